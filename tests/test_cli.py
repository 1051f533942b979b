"""The CLI end to end on a tiny model, as a user runs it (subprocesses)."""
import json
import subprocess
import sys

import numpy as np
import pytest

from .conftest import TINY


def dadq_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "dadq", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    import dadq
    from diffusers import DDPMPipeline

    folder = tmp_path_factory.mktemp("cli") / "tiny"
    m = dadq.load_model(dict(TINY), seed=0)
    DDPMPipeline(unet=m.unet, scheduler=m.scheduler).save_pretrained(folder, safe_serialization=True)
    return folder


def test_cli_end_to_end(tiny_folder, tmp_path):
    prof = tmp_path / "p.safetensors"
    r = dadq_cli("profile", "--model", str(tiny_folder), "--groups", "2", "--bits", "2,4,8", "--calib", "2",
                 "--layers", "conv_*", "--layers", "*resnets.0.conv1", "--out", str(prof),
                 "--csv", str(tmp_path / "p.csv"))
    assert r.returncode == 0, r.stderr
    assert "profile of 7 layers x 2 groups" in r.stdout and prof.exists()
    import pandas as pd

    assert len(pd.read_csv(tmp_path / "p.csv")) == 2 * 2 * 7 * 3  # kinds x groups x layers x widths

    alloc = tmp_path / "a.json"
    r = dadq_cli("allocate", "--profile", str(prof), "--budget", "4", "--method", "exact", "--out", str(alloc),
                 "--csv", str(tmp_path / "a.csv"), "--measure", "--model", str(tiny_folder))
    assert r.returncode == 0, r.stderr
    assert "additivity: measured / predicted" in r.stdout and "budget scope group" in r.stdout
    saved = json.loads(alloc.read_text())
    assert saved["format"] == "dadq-allocation/2" and len(saved["w_bits"]) == 2
    assert max(saved["group_avg_bits"]) <= 4.0 + 1e-9
    import pandas as pd

    table = pd.read_csv(tmp_path / "a.csv")
    assert len(table) == 2 * 2 * 7 and table.groupby("group").size_bits.sum().tolist() == saved["group_bits"]

    out = tmp_path / "samples"
    r = dadq_cli("sample", "--model", str(tiny_folder), "--profile", str(prof), "--alloc", str(alloc),
                 "--n", "4", "--steps", "5", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "fp.png").exists() and (out / "quantized.png").exists()
    assert "paired PSNR" in r.stdout
    # an allocation file is checked where it enters: a width its profile lacks is refused
    saved["a_bits"][0][0] = 3
    (tmp_path / "bad.json").write_text(json.dumps(saved))
    r = dadq_cli("sample", "--model", str(tiny_folder), "--profile", str(prof), "--alloc", str(tmp_path / "bad.json"),
                 "--n", "2", "--steps", "2", "--out", str(out))
    assert r.returncode == 2 and "a_bits uses bits [3]" in r.stderr

    r = dadq_cli("allocate", "--profile", str(prof), "--budget", "3", "--budget-scope", "mean", "--method", "exact",
                 "--out", str(tmp_path / "m.json"))
    assert r.returncode == 0, r.stderr
    mean = json.loads((tmp_path / "m.json").read_text())
    assert mean["budget_scope"] == "mean" and np.mean(mean["group_avg_bits"]) <= 3.0 + 1e-9
    # full precision offered as the top point reaches the solver, and the budget still holds
    r = dadq_cli("allocate", "--profile", str(prof), "--budget", "8", "--target", "a", "--method", "exact", "--fp-top",
                 "--out", str(tmp_path / "top.json"))
    assert r.returncode == 0, r.stderr
    top = json.loads((tmp_path / "top.json").read_text())
    assert any(n.startswith("fp_top:") for n in top["notes"]) and max(top["group_avg_bits"]) <= 8.0 + 1e-9
    r = dadq_cli("allocate", "--profile", str(prof), "--budget", "4", "--target", "a", "--method", "uniform",
                 "--fp-input", "--out", str(tmp_path / "in.json"))
    assert r.returncode == 0, r.stderr
    fin = json.loads((tmp_path / "in.json").read_text())
    assert any(n.startswith("fp_input:") for n in fin["notes"]) and min(fin["group_avg_bits"]) > 4.0
    # the trajectory gain per group weighs the groups' D in a pooled solve
    r = dadq_cli("gain", "--model", str(tiny_folder), "--groups", "2", "--n", "2", "--steps", "4",
                 "--out", str(tmp_path / "gain.json"))
    assert r.returncode == 0, r.stderr
    gain = json.loads((tmp_path / "gain.json").read_text())
    assert len(gain["gain"]) == 2 and min(gain["gain"]) > 0 and "t 0-" in r.stdout
    r = dadq_cli("allocate", "--profile", str(prof), "--budget", "3", "--budget-scope", "mean", "--method", "exact",
                 "--group-weights", str(tmp_path / "gain.json"), "--group-weights-power", "0.5",
                 "--out", str(tmp_path / "gw.json"))
    assert r.returncode == 0, r.stderr
    gw = json.loads((tmp_path / "gw.json").read_text())
    assert any(n.startswith("group_weights:") for n in gw["notes"]) and np.mean(gw["group_avg_bits"]) <= 3.0 + 1e-9
    r = dadq_cli("allocate", "--profile", str(prof), "--budget", "3", "--group-weights", "1,2,3")
    assert r.returncode == 2 and "give 2 finite weights" in r.stderr

    r = dadq_cli("sweep", "--profile", str(prof), "--budgets", "3,6", "--out", str(tmp_path / "sw.json"))
    assert r.returncode == 0, r.stderr
    rows = json.loads((tmp_path / "sw.json").read_text())
    assert [row["budget"] for row in rows] == [3.0, 6.0]
    assert rows[0]["exact"] <= rows[0]["lagrangian"] + 1e-12 and rows[1]["exact"] <= rows[1]["uniform"] + 1e-12


def test_cli_errors_are_one_line(tiny_folder, tmp_path):
    r = dadq_cli("sample", "--model", str(tmp_path / "nope"))
    assert r.returncode == 2 and r.stderr.startswith("error: no model at") and "Traceback" not in r.stderr
    (tmp_path / "bad.safetensors").write_bytes(b"\x00" * 10)
    r = dadq_cli("allocate", "--profile", str(tmp_path / "bad.safetensors"), "--budget", "4")
    assert r.returncode == 2 and "corrupt or truncated" in r.stderr and "Traceback" not in r.stderr


def test_cli_infeasible_budget(tiny_folder, tmp_path):
    prof = tmp_path / "p.safetensors"
    assert dadq_cli("profile", "--model", str(tiny_folder), "--groups", "1", "--bits", "2,4", "--calib", "1",
                    "--layers", "conv_in", "--out", str(prof)).returncode == 0
    r = dadq_cli("allocate", "--profile", str(prof), "--budget", "1")
    assert r.returncode == 2 and "smallest feasible budget is 2" in r.stderr


def test_help_lists_commands():
    r = dadq_cli("--help")
    assert r.returncode == 0
    for cmd in ("profile", "gain", "allocate", "sample", "fid", "sweep"):
        assert cmd in r.stdout


def test_cli_profile_records_rounding_options(tiny_folder, tmp_path):
    import dadq

    prof = tmp_path / "g.safetensors"
    r = dadq_cli("profile", "--model", str(tiny_folder), "--groups", "2", "--bits", "3,4", "--calib", "2",
                 "--layers", "conv_*", "--rounding", "gptq", "--bias-correction", "--metric", "mse",
                 "--no-split-concat", "--weight-grid", "asymmetric", "--out", str(prof))
    assert r.returncode == 0, r.stderr
    settings = dadq.Profile.load(prof).settings()
    assert (settings["rounding"], settings["bias_correction"], settings["metric"], settings["split_concat"],
            settings["weight_grid"]) == ("gptq", True, "mse", False, "asymmetric")
    alloc = tmp_path / "a.json"
    r = dadq_cli("allocate", "--profile", str(prof), "--budget", "4", "--method", "exact", "--out", str(alloc),
                 "--measure", "--model", str(tiny_folder))
    assert r.returncode == 0, r.stderr


def test_cli_profile_token_ranges_on_the_dit(tmp_path):
    import dadq

    prof = tmp_path / "t.safetensors"
    r = dadq_cli("profile", "--model", "dit", "--groups", "2", "--bits", "4,8", "--calib", "1", "--calib-steps", "4",
                 "--layers", "transformer_blocks.0.attn1.to_q", "--act-granularity", "token", "--out", str(prof))
    assert r.returncode == 0, r.stderr
    loaded = dadq.Profile.load(prof)
    assert loaded.settings()["act_granularity"] == "token" and loaded.meta["calib_steps"] == 4
    assert loaded.meta["token_layers"]  # the attention query inputs got per-token ranges
    r = dadq_cli("profile", "--model", "dit", "--act-granularity", "channel", "--out", str(prof))
    assert r.returncode != 0 and "act-granularity" in r.stderr
