"""The sweep's finished-cell cache: what lets the hours-long full sweep run in time-boxed slices."""
import dataclasses
import json
import time

import pytest
import torch

import dadq
from experiments.cells import CellCache, Deadline, OutOfTime, allocation_digest, profile_digest
from dadq.models import default_profile_path


def test_cells_persist_and_a_changed_profile_misses(tmp_path):
    prof = dadq.Profile.load(default_profile_path("default"))
    a = dadq.allocate(prof, budget=4.0, target="wa", method="lagrangian")
    path = tmp_path / "x.cells.json"
    key = CellCache.key("fid", profile_digest(prof), allocation_digest(a), "n8", "seed1")
    CellCache(path).put(key, {"fid": 12.5})
    again = CellCache(path)
    assert again.get(key) == {"fid": 12.5} and again.hits == 1
    # one curve entry changed: another key, so no stale number is reused
    d_w = prof.d_w.copy()
    d_w[0, 0, 0] *= 1.01
    changed = dataclasses.replace(prof, d_w=d_w)
    assert profile_digest(changed) != profile_digest(prof)
    assert again.get(CellCache.key("fid", profile_digest(changed), allocation_digest(a), "n8", "seed1")) is None
    # another allocation of the same profile misses too
    b = dadq.allocate(prof, budget=6.0, target="wa", method="lagrangian")
    assert allocation_digest(b) != allocation_digest(a)
    assert json.loads(path.read_text())["cells"][key]["fid"] == 12.5


def test_corrupt_cache_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "bad.cells.json"
    path.write_text("{not json")
    with pytest.raises(SystemExit, match="bad.cells.json.*move it away"):
        CellCache(path)


def test_deadline():
    Deadline(None).check("anything")  # no limit: never stops
    with pytest.raises(OutOfTime):  # 0 minutes: start nothing new
        Deadline(0).check("grid cell")
    d = Deadline(1e-6)
    time.sleep(0.01)
    with pytest.raises(OutOfTime, match="FID seed 3"):
        d.check("FID seed 3")


def test_a_time_boxed_slice_resumes_and_plots_what_is_done(tmp_path):
    """The real sweep on a random-weight model, tiny: a first run fills the cell cache; a second,
    given no time, takes every grid cell from the cache, stops before its first FID row, and still
    writes the finished part's plots, marked incomplete."""
    from experiments import sweep

    out, cache = tmp_path / "s.json", tmp_path / "s.cells.json"
    common = ["--model", "random", "--n", "2", "--steps", "2", "--no-ablation", "--threads", "1",
              "--out", str(out), "--cache", str(cache), "--name", "t"]
    assert sweep.main(common + ["--fid-n", "0"]) == 0
    first = json.loads(out.read_text())
    assert first["complete"]
    assert first["setup"]["profile"].startswith("built here")
    assert sweep.main(common + ["--fid-n", "8", "--fid-seeds", "1", "--max-minutes", "0"]) == 0
    again = json.loads(out.read_text())
    assert not again["complete"] and again["stopped_before"] == "FID FP seed 1"
    # the first run's hits are allocations two methods share (e.g. every method at W 2); the second's are all
    assert first["cells_from_cache"] < again["cells_from_cache"] == len(first["cells"])
    assert [c["paired_ssim_mean"] for c in again["cells"]] == [c["paired_ssim_mean"] for c in first["cells"]]
    # cells evaluated for themselves in the first slice still count in the additivity check
    assert again["additivity"]["all"]["cells"] == first["additivity"]["all"]["cells"] > 20
    # the slice history survives the rewrite: the first slice computed cells, the second none
    assert [s["cells_computed"] for s in again["slices"]] == [first["slices"][0]["cells_computed"], 0]
    assert first["slices"][0]["cells_computed"] == len(json.loads(cache.read_text())["cells"]) > 20
    assert {"ssim_vs_bits", "additivity"} <= set(again["plots"])
    assert "[partial run]" in (tmp_path / "t_ssim_vs_bits.html").read_text()


def test_writes_merge_with_cells_another_process_added(tmp_path):
    """Two caches on one file (two slices, or a merge while a slice runs) lose nothing."""
    from experiments import cells

    path = tmp_path / "s.cells.json"
    a, b = CellCache(path), CellCache(path)
    a.put("x", {"fid": 1.0})
    b.put("y", {"fid": 2.0})  # b never saw x: its write must keep it
    assert set(json.loads(path.read_text())["cells"]) == {"x", "y"}
    assert b.get("x") == {"fid": 1.0}  # a miss looks at the disk again
    other = tmp_path / "o.cells.json"
    CellCache(other).put("z", {"fid": 3.0})
    CellCache(other).put("x", {"fid": 99.0})
    assert cells.main(["--merge", str(other), "--into", str(path)]) == 0
    merged = json.loads(path.read_text())["cells"]
    assert merged["z"] == {"fid": 3.0} and merged["x"] == {"fid": 1.0}  # what is there stays


def test_fid_seeds_take_a_count_or_a_range():
    """A second process can run seed 3 alone (``--fid-seeds 3-3``) beside one on seeds 1..2."""
    import argparse

    from experiments.sweep import fid_seed_list

    assert fid_seed_list("3") == [1, 2, 3]
    assert fid_seed_list("2-3") == [2, 3]
    assert fid_seed_list("3-3") == [3]
    for bad in ("0", "3-2", "x", "0-2"):
        with pytest.raises(argparse.ArgumentTypeError, match="count N >= 1.*range A-B"):
            fid_seed_list(bad)


def test_fp_row_placed_last_is_still_attached_to_every_row(tmp_path):
    """``--fid-configs wa:4:uniform,fp``: the quantized row runs before FP (so a second process sharing
    the cache need not wait for FP), and the result still gives it the FP FID of the same seed."""
    from experiments import sweep

    out, cache = tmp_path / "f.json", tmp_path / "f.cells.json"
    common = ["--model", "random", "--n", "2", "--steps", "2", "--no-grid", "--no-ablation", "--threads", "1",
              "--fid-n", "8", "--fid-steps", "2", "--fid-seeds", "1", "--out", str(out), "--cache", str(cache),
              "--name", "f"]
    assert sweep.main(common + ["--fid-configs", "wa:4:uniform,fp"]) == 0
    first = json.loads(out.read_text())
    fid_lines = [line for line in first["log"] if "FID" in line and "seed 1" in line]
    assert "WA 4 uniform" in fid_lines[0] and " FP " in fid_lines[1]  # computed in the order given
    fp, q = first["fid"]
    assert fp["row"] == "FP" and q["row"].startswith("WA 4 uniform G=")
    assert q["fp_fid_same_sampler_and_seeds"] == fp["fid"] and q["fid"] != fp["fid"]
    assert first["slices"][-1]["cells_computed"] == 2
    # the default order (FP first) finds both rows in the cache and computes nothing
    assert sweep.main(common + ["--fid-configs", "wa:4:uniform", "--max-minutes", "0"]) == 0
    again = json.loads(out.read_text())
    assert again["complete"] and again["fid"] == first["fid"] and again["slices"][-1]["cells_computed"] == 0
    with pytest.raises(SystemExit, match="'wa:4' is not target:budget:method"):
        sweep.main(common + ["--fid-configs", "wa:4"])


def test_a_rewrite_lists_the_slices_of_every_process_that_shared_the_cache(tmp_path):
    """A second process writes its own result file (``--out``), so its slice is kept in the shared cell
    cache too: the main result, rewritten later, lists both processes' slices, oldest first."""
    from experiments import sweep

    cache = tmp_path / "s.cells.json"
    common = ["--model", "random", "--n", "2", "--steps", "2", "--no-grid", "--no-ablation", "--threads", "1",
              "--fid-n", "8", "--fid-steps", "2", "--fid-seeds", "1", "--cache", str(cache), "--name", "s"]
    main, side = tmp_path / "s.json", tmp_path / "side.json"
    assert sweep.main(common + ["--fid-configs", "fp", "--out", str(main)]) == 0
    assert sweep.main(common + ["--fid-configs", "wa:4:uniform", "--out", str(side)]) == 0
    assert len(json.loads(cache.read_text())["slices"]) == 2
    assert sweep.main(common + ["--fid-configs", "wa:4:uniform", "--out", str(main), "--max-minutes", "0"]) == 0
    result = json.loads(main.read_text())
    slices = result["slices"]
    assert [s["cells_computed"] for s in slices] == [1, 1, 0]
    assert slices[0]["utc_start"] < slices[1]["utc_start"] < slices[2]["utc_start"]  # started in this order
    assert result["fid"][1]["row"].startswith("WA 4 uniform")
    # a process sharing the cache under another name is not this result's slice
    assert sweep.main(common[:-1] + ["other", "--fid-configs", "wa:4:uniform", "--out", str(tmp_path / "o.json"),
                                     "--max-minutes", "0"]) == 0
    assert json.loads((tmp_path / "o.json").read_text())["slices"][0]["cells_computed"] == 0


def test_fid_rows_of_a_second_profile_with_scope_and_pinned_ends(tmp_path):
    """``--profiles gptq=PATH`` and config options: a GPTQ + bias-corrected profile's rows sample the
    weights it profiled (the check passes), ``mean`` sets the budget scope, ``ends8`` pins the first and
    last layers at 8 bits (their real average bits above the budget), ``--fid-paired`` adds paired SSIM,
    whose FP samples a second process reads from disk. Past the deadline, a missing row does not hide the
    finished rows after it."""
    from benchmarks.common import load_model
    from experiments import sweep

    model = load_model("random")
    kw = dict(groups=2, bits=(2, 4, 8), calib_per_group=1, mode="exact", split_concat=False, calib_steps=10,
              layers=["conv_in", "conv_out", "mid_block.resnets.0.conv1"])
    rtn = dadq.profile(model, **kw).save(tmp_path / "rtn.safetensors")
    gptq = dadq.profile(model, rounding="gptq", bias_correction=True, **kw).save(tmp_path / "gptq.safetensors")
    common = ["--model", "random", "--profile", str(rtn), "--no-grid", "--no-ablation", "--threads", "1", "--fid-n", "4",
              "--fid-steps", "1", "--fid-seeds", "1", "--cache", str(tmp_path / "g.cells.json"), "--name", "g",
              "--profiles", f"gptq={gptq}", "--fid-paired"]
    out = tmp_path / "g.json"
    assert sweep.main(common + ["--out", str(out), "--fid-configs", "w:4:uniform:gptq:ends8,wa:4:exact:gptq:mean"]) == 0
    r = json.loads(out.read_text())
    assert r["profiled_weights_check"]["gptq"]["pass"]
    assert r["setup"]["more_profiles"]["gptq"]["rounding"] == "gptq"
    rows = {x["row"]: x for x in r["fid"]}
    ends = rows["W 4 uniform G=2 gptq ends@8"]
    assert ends["rounding"] == "gptq" and ends["bias_correction"] and 4.0 < ends["w_avg_bits"] < 8.0
    assert ends["a_avg_bits"] == 32.0 and 0.0 < ends["paired_ssim_mean"] <= 1.0
    assert rows["WA 4 exact G=2 gptq scope=mean"]["budget_scope"] == "mean"
    (fp_file,) = (tmp_path / "g.fp").glob("fp_*_n4_ddim1_seed1.safetensors")
    stored = fp_file.stat().st_mtime_ns
    # a second process: its FP samples come from disk (not drawn and stored again), its RTN row is computed
    assert sweep.main(common + ["--out", str(tmp_path / "h.json"), "--fid-configs", "w:4:uniform"]) == 0
    h = json.loads((tmp_path / "h.json").read_text())
    assert fp_file.stat().st_mtime_ns == stored
    assert h["fid"][1]["rounding"] == "rtn" and h["fid"][1]["w_avg_bits"] <= 4.0
    # a rewrite past the deadline: the missing first row is skipped, the finished ones after it are kept
    assert sweep.main(common + ["--out", str(out), "--max-minutes", "0", "--fid-configs",
                                "w:3:exact,w:4:uniform:gptq:ends8,w:4:uniform"]) == 0
    r = json.loads(out.read_text())
    assert not r["complete"] and [x["row"] for x in r["fid"]] == ["FP", "W 4 uniform G=2 gptq ends@8", "W 4 uniform G=2"]
    with pytest.raises(SystemExit, match="option 'nope'.*endsN"):
        sweep.main(common + ["--out", str(tmp_path / "x.json"), "--fid-configs", "w:4:uniform:nope"])


def test_a_dataset_reference_keys_cells_by_its_test_images():
    """A non-MNIST sweep scores against the stats file of its test split (dadq.metrics.dataset_reference); the
    cells stay keyed by the digest of those images, as when the images themselves were passed."""
    from dadq.data import load_dataset, to_model_range
    from dadq.metrics import dataset_reference
    from experiments.cells import digest
    from experiments.sweep import reference_id

    assert reference_id("default") == "default"
    images = to_model_range(load_dataset("fashion-mnist", "test")[0])
    assert reference_id(dataset_reference("fashion-mnist")) == digest(images) == reference_id(torch.from_numpy(images))


def test_gain_option_weights_each_groups_d_by_the_cached_trajectory_gain(tmp_path, tiny_model, tiny_profile):
    """``gainP`` in a config: the allocation is dadq.allocate's with group_weights = gain ** P, where the gain is
    dadq.trajectory_gain of the sweep's model, measured once and then read from the cell cache (a second sweep
    past its deadline still finds it)."""
    import argparse

    import numpy as np

    from benchmarks.common import load_model
    from experiments.sweep import GAIN_SETTINGS, Sweep, config_allocation, config_label, fid_configs, sweep_gain

    ((t, b, m, prof, opts),) = fid_configs("w:4:exact:mean:gain0.5", tiny_profile)
    assert opts == {"scope": "mean", "gain_power": 0.5}
    assert config_label(t, b, m, prof, opts) == "W 4 exact G=3 scope=mean gain^0.5"
    cache = tmp_path / "t.cells.json"
    gain = sweep_gain(Sweep(argparse.Namespace(), tiny_model, prof, CellCache(cache)), prof)
    assert gain.shape == (3,) and np.all(gain > 0)
    late = Sweep(argparse.Namespace(), tiny_model, prof, CellCache(cache), Deadline(0))
    assert np.array_equal(sweep_gain(late, prof), gain) and late.cache.hits == 1
    with pytest.raises(OutOfTime):  # another model's gain is not in the cache
        sweep_gain(Sweep(argparse.Namespace(), load_model("random"), prof, CellCache(cache), Deadline(0)), prof)
    a = config_allocation(dadq, t, b, m, prof, opts, gain)
    ref = dadq.allocate(prof, budget=4, target="w", method="exact", budget_scope="mean", group_weights=gain ** 0.5)
    assert np.array_equal(a.w_bits, ref.w_bits) and a.w_bits.shape == (3, len(prof.layer_names))
    assert GAIN_SETTINGS["steps"] == 50  # the gain of the sampler the FID rows use (DDIM-50)
    with pytest.raises(SystemExit, match="gainP"):
        fid_configs("w:4:exact:gainx", tiny_profile)
    # againP: the activations take their own power (here none: gain ** 0), the weights keep gain ** 0.5
    ((t, b, m, prof, opts),) = fid_configs("w4a:6:exact:mean:gain0.5:again0", tiny_profile)
    assert opts == {"scope": "mean", "gain_power": 0.5, "a_gain_power": 0.0}
    assert config_label(t, b, m, prof, opts).endswith("gain^0.5 A gain^0")
    a = config_allocation(dadq, t, b, m, prof, opts, gain)
    ref = dadq.allocate(prof, w_budget=4, a_budget=6, target="wa", method="exact", budget_scope="mean",
                        group_weights={"w": gain ** 0.5, "a": np.ones(3)})
    assert np.array_equal(a.w_bits, ref.w_bits) and np.array_equal(a.a_bits, ref.a_bits)


def test_cells_sampled_on_a_gpu_are_keyed_apart(tiny_model, tmp_path):
    """A GPU's FID never stands in for the CPU's: its cells and FP samples carry the device; the CPU's keys are the
    ones every earlier result was stored under."""
    from argparse import Namespace

    from experiments.sweep import Sweep, device_key, sample_batch

    cpu = Sweep(Namespace(device="cpu", sample_batch=None), tiny_model, None, CellCache(tmp_path / "c.cells.json"))
    gpu = Sweep(Namespace(device="cuda", sample_batch=2500), tiny_model, None, CellCache(tmp_path / "c.cells.json"))
    assert device_key(cpu) == () and device_key(gpu) == ("device=cuda",)
    assert CellCache.key("fid-fp", "m", *device_key(cpu)) != CellCache.key("fid-fp", "m", *device_key(gpu))
    assert cpu.fp_path(8, 5, 1) != gpu.fp_path(8, 5, 1) and "_cuda_" in gpu.fp_path(8, 5, 1).name
    assert sample_batch(cpu) == 64 and sample_batch(gpu) == 2500
