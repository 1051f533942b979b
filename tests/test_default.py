"""The embedded default: shipped model, shipped profile, and the trainer that makes them."""
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import dadq
from dadq.metrics import classify

ROOT = Path(__file__).resolve().parent.parent


def test_default_loads_fast_and_draws_digits():
    from diffusers import DDPMScheduler, UNet2DModel  # noqa: F401  (the one-time library import is not the load:
    # it takes seconds more on a busy 2-core box; speed targets are measured by benchmarks/)

    t0 = time.perf_counter()
    model = dadq.load_model("default")
    load_s = time.perf_counter() - t0
    assert load_s < 5.0, f"load took {load_s:.1f} s"
    imgs = dadq.sample(model, n=4, steps=20, seed=0)
    assert imgs.shape == (4, 1, 28, 28)
    _, conf = classify(imgs)
    assert (conf > 0.5).sum() >= 3, conf


@pytest.mark.parametrize("which", ["default", "fashion"])
def test_shipped_profile_matches_its_model(which):
    """The MNIST default and the held-out Fashion-MNIST model ship with profiles that fit them."""
    folder = dadq.models.DEFAULT_MODEL_DIR if which == "default" else ROOT / "assets" / "fashion"
    model = dadq.load_model(which if which == "default" else str(folder))
    prof = dadq.Profile.load(folder / "profile.safetensors")
    prof.check_model(model)
    assert prof.num_groups == 10 and prof.bits.tolist() == list(range(2, 9))
    assert np.isfinite(prof.d_w).all() and np.isfinite(prof.d_a).all()
    assert prof.num_layers == 64
    # the paper's qualitative finding on this model: allocation works and beats uniform bits
    a = dadq.allocate(prof, budget=4, method="exact")
    u = dadq.allocate(prof, budget=4, method="uniform")
    assert a.predicted.sum() < u.predicted.sum()


@pytest.mark.parametrize("which", ["default", "fashion"])
def test_shipped_gain_fits_its_model_and_profile(which, tmp_path):
    """gain.json beside each model is its trajectory gain over its profile's groups, at GAIN_SETTINGS (the
    settings of the sweeps' gainP rows), growing from the last steps to the first; load_gain refuses it
    for another grouping or another model."""
    from dadq.trajectory import GAIN_FILE, GAIN_SETTINGS, load_gain

    folder = dadq.models.DEFAULT_MODEL_DIR if which == "default" else ROOT / "assets" / "fashion"
    model = dadq.load_model(which if which == "default" else str(folder))
    prof = dadq.Profile.load(folder / "profile.safetensors")
    gain, rec = load_gain(folder / GAIN_FILE, prof.groups, model)
    assert {k: rec[k] for k in GAIN_SETTINGS} == GAIN_SETTINGS and rec["sampler"] == "ddim"
    assert (gain > 0).all() and gain[-1] > 1000 * gain[:3].max()
    with pytest.raises(ValueError, match="10 groups over 1000 timesteps, but the profile has 5 groups"):
        load_gain(folder / GAIN_FILE, dadq.TimestepGroups(1000, 5), model)
    other = dadq.load_model(str(ROOT / "assets" / ("fashion" if which == "default" else "default")))
    with pytest.raises(ValueError, match="not on the loaded one.*measure the gain of this model"):
        load_gain(folder / GAIN_FILE, prof.groups, other)
    (tmp_path / "bad.json").write_text("{\"gain\": 3}")
    with pytest.raises(ValueError, match="no 'gain' list"):
        load_gain(tmp_path / "bad.json")


def test_assets_size_limit():
    total = sum(f.stat().st_size for f in (ROOT / "assets").rglob("*") if f.is_file() and not f.name.startswith(".ckpt"))
    assert total <= 30e6, f"assets/ holds {total / 1e6:.1f} MB"


def test_trainer_runs_and_resumes(tmp_path):
    out = tmp_path / "m"
    ckpt = tmp_path / "ck.pt"
    # the shipped test split (10k) stands in for the training set, so the test runs on a fresh clone
    trainer = [sys.executable, "-m", "scripts.train_default", "--split", "test"]
    run = lambda args: subprocess.run(trainer + args, capture_output=True, text=True, timeout=300, cwd=ROOT)  # noqa: E731
    base = ["--tiny", "--batch", "8", "--grid-steps", "0", "--out", str(out), "--checkpoint", str(ckpt)]
    r = run(base + ["--steps", "20"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").exists() and ckpt.exists()
    r = run(base + ["--steps", "30", "--resume"])
    assert r.returncode == 0, r.stderr[-2000:]
    log = (out / "train.log").read_text()
    assert "# start step=0" in log and "# start step=20" in log
    meta = json.loads((out / "training.json").read_text())
    assert meta["steps"] == 30 and meta["split"] == "test"
    assert "mnist test set (10k images" in (out / "README.md").read_text()
    m = dadq.load_model(str(out))
    assert m.sample_shape == (1, 28, 28)
    # --init-from: a new run starts from the saved weights and carries the earlier run into the card
    out2 = tmp_path / "m2"
    r = run(["--tiny", "--batch", "8", "--grid-steps", "0", "--out", str(out2), "--checkpoint", str(tmp_path / "ck2.pt"),
             "--steps", "5", "--init-from", str(out), "--bf16", "--no-ema-warmup"])
    assert r.returncode == 0, r.stderr[-2000:]
    meta2 = json.loads((out2 / "training.json").read_text())
    assert meta2["steps"] == 5 and meta2["history"][0]["steps"] == 30
    assert meta2["bf16"] is True and np.isfinite(meta2["final_loss_last500"])
    assert meta["ema_warmup"] is True and meta2["ema_warmup"] is False
    assert meta2["history"][0]["unet_sha256"] == meta["unet_sha256"]
    card2 = (out2 / "README.md").read_text()
    assert "earlier runs in all: 30 steps" in card2 and "(no warm-up)" in card2
    r = run(base + ["--steps", "5", "--init-from", str(tmp_path / "nowhere")])
    assert r.returncode != 0 and "--init-from: no" in r.stderr


def test_ema_decay_with_and_without_warmup():
    from scripts.train_default import build_ema

    params = [torch.nn.Parameter(torch.zeros(3))]
    pinned, ramped = build_ema(params, 0.9995, warmup=False), build_ema(params, 0.9995, warmup=True)
    for step in (2, 100, 8000):
        assert pinned.get_decay(step) == 0.9995
        assert ramped.get_decay(step) < 0.9995
    assert abs(ramped.get_decay(8001) - (1 - 8001 ** (-2 / 3))) < 1e-12  # diffusers counts from step 1


def test_classifier_check_on_real_digits():
    from scripts.evaluate_default import classifier_check

    from dadq.data import load_dataset, to_model_range

    imgs, _ = load_dataset("mnist", "test")
    c = classifier_check(torch.from_numpy(to_model_range(imgs[:500].copy())))
    assert c["frac_conf_gt_0.9"] > 0.9 and abs(sum(c["class_fractions"]) - 1) < 1e-3
    assert 0 < c["min_class_frac"] <= 0.1 <= c["max_class_frac"] < 0.2


def test_model_card_quality_section(tmp_path):
    from scripts.evaluate_default import MARK, card_with_quality

    card = tmp_path / "README.md"
    card.write_text("# card\n\nbody\n\n## Quality\n\nold numbers\n")
    res = {"metric": "FID (MNIST-classifier features)", "reference": "mnist test set, 10k images", "seed": 0,
           "command": "python scripts/evaluate_default.py --quick", "wall_s": 600.0,
           "ddim100_1k": {"fid": 50.0, "n": 1000, "s": 1.0},
           "ddim50_5k": {"fid": 40.0, "n": 5000, "s": 1.0, "command": "python scripts/evaluate_default.py --only ddim50_5k"},
           "classifier_on_ddim100_1k": {"frac_conf_gt_0.9": 0.91, "class_fractions": [0.1] * 10,
                                        "min_class_frac": 0.1, "max_class_frac": 0.1}}
    text = card_with_quality(card, res)
    assert text.count(MARK) == 1 and "old numbers" not in text and text.startswith("# card")
    assert "| model samples, DDIM-50 | 5,000 | 40.00 |" in text
    assert "Rows added later by: `python scripts/evaluate_default.py --only ddim50_5k`" in text
    assert "confidence > 0.9: **met**" in text and "DDPM-1000" in text.split("Not run")[1]
    # the held-out model's results come from its own quality.json and training.json
    held = tmp_path / "fashion"
    held.mkdir()
    (held / "quality.json").write_text(json.dumps({
        "metric": "FID (MNIST-classifier features)", "reference": "fashion-mnist test set, 10k images", "seed": 0,
        "dataset": "fashion-mnist", "command": "python scripts/evaluate_default.py --model assets/fashion --quick",
        "wall_s": 300.0, "ddim50_1k": {"fid": 77.5, "n": 1000, "s": 1.0}}))
    (held / "training.json").write_text(json.dumps({"command": "python scripts/train_default.py --dataset fashion-mnist",
                                                    "steps": 3500, "wall_time_s": 3600.0, "final_loss_last500": 0.04}))
    text = card_with_quality(card, res, held)
    assert "### Held-out model: fashion-mnist (`fashion/`)" in text and "| model samples, DDIM-50 | 1,000 | 77.50 |" in text
    assert "3500 steps, 60.0 min, final loss 0.0400" in text and "(../fashion/samples.png)" in text
    assert card_with_quality(card, res, tmp_path / "nowhere").count("Held-out") == 0


def test_import_rows_only_for_the_same_weights(tmp_path):
    """Rows measured on another machine (a GPU) merge into the card only for identical weights."""
    import shutil

    from scripts import evaluate_default

    ours, gpu = tmp_path / "ours", tmp_path / "gpu"
    for d in (ours, gpu):
        (d / "unet").mkdir(parents=True)
        shutil.copy(ROOT / "assets/default/unet/diffusion_pytorch_model.safetensors", d / "unet")
    sha = hashlib.sha256((ours / "unet/diffusion_pytorch_model.safetensors").read_bytes()).hexdigest()
    base = {"metric": "FID (MNIST-classifier features)", "reference": "mnist test set, 10k images", "seed": 0,
            "dataset": "mnist", "wall_s": 60.0}
    (ours / "quality.json").write_text(json.dumps({**base, "command": "cpu run", "ddim50_1k": {"fid": 20.0, "n": 1000}}))
    (gpu / "quality.json").write_text(json.dumps({**base, "command": "gpu run", "device": "NVIDIA H200",
                                                  "ddpm1000_5k": {"fid": 5.0, "n": 5000, "device": "NVIDIA H200"}}))
    (gpu / "training.json").write_text(json.dumps({"unet_sha256": sha}))
    args = ["--model", str(ours), "--import-rows", str(gpu), "--only"]
    with pytest.raises(SystemExit, match="no row ddim50_5k"):
        evaluate_default.main(args + ["ddim50_5k"])
    assert evaluate_default.main(args + ["ddpm1000_5k"]) == 0
    merged = json.loads((ours / "quality.json").read_text())
    assert merged["ddim50_1k"]["fid"] == 20.0 and merged["ddpm1000_5k"] == {"fid": 5.0, "n": 5000,
                                                                            "device": "NVIDIA H200", "command": "gpu run"}
    card = (ours / "README.md").read_text()
    assert "| model samples, DDPM-1000 (the paper's sampler) (on NVIDIA H200) | 5,000 | 5.00 |" in card
    (gpu / "training.json").write_text(json.dumps({"unet_sha256": "0" * 64}))
    with pytest.raises(SystemExit, match="not .* rows of another model cannot be merged"):
        evaluate_default.main(args + ["ddpm1000_5k"])


# --- data: the shipped test splits, the data-folder lookup, the checksummed download -----------------

def test_shipped_test_splits_are_the_originals():
    from dadq import data

    for name in data.DATASETS:
        for fname in data.split_files("test"):
            path = data.SHIPPED_DATA / name / fname
            assert data.file_sha256(path) == data.SHA256[name][fname], path
        images, labels = data.load_dataset(name, "test", data_root=data.SHIPPED_DATA)
        assert images.shape == (10000, 28, 28) and images.dtype == np.uint8 and labels.shape == (10000,)
        assert np.bincount(labels).tolist() == ([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
                                                 if name == "mnist" else [1000] * 10)


def test_data_lookup_order(tmp_path, monkeypatch):
    import shutil

    from dadq import data

    monkeypatch.delenv(data.DATA_ENV, raising=False)
    monkeypatch.setattr(data, "SHARED_DATA", tmp_path / "no-shared")  # as on a fresh clone
    assert data.find_split("mnist", "test") == data.SHIPPED_DATA / "mnist"
    assert data.find_split("mnist", "train") is None
    with pytest.raises(FileNotFoundError, match=r"train split is not here .*--data DIR.*python -m dadq.data mnist"):
        data.load_dataset("mnist", "train")
    # an explicit folder comes first: the argument, else $DADQ_DATA
    mine = tmp_path / "mine"
    (mine / "mnist").mkdir(parents=True)
    for fname in data.split_files("test"):
        shutil.copy(data.SHIPPED_DATA / "mnist" / fname, mine / "mnist" / fname)
    assert data.find_split("mnist", "test", data_root=mine) == mine / "mnist"
    monkeypatch.setenv(data.DATA_ENV, str(mine))
    assert data.find_split("mnist", "test") == mine / "mnist"
    # ... and a split it lacks is still found in the shipped data
    assert data.find_split("fashion-mnist", "test") == data.SHIPPED_DATA / "fashion-mnist"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load_dataset("mnist", "test", data_root=tmp_path / "typo")
    with pytest.raises(ValueError, match="Unknown dataset"):
        data.load_dataset("cifar10", "test")


def _mirror(folder: Path, corrupt: str | None = None) -> str:
    """A local folder in the mirrors' layout serving the shipped MNIST test files, as a file:// URL;
    ``corrupt`` names a file served with one bit flipped."""
    from dadq import data

    folder.mkdir(parents=True)
    for fname in data.split_files("test"):
        raw = (data.SHIPPED_DATA / "mnist" / fname).read_bytes()
        (folder / fname).write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]) if fname == corrupt else raw)
    return folder.as_uri() + "/"


def test_download_verifies_and_keeps_good_files(tmp_path, monkeypatch):
    from dadq import data

    root = tmp_path / "root"
    folder = data.download("mnist", root, splits=("test",), mirror=_mirror(tmp_path / "mirror"))
    assert folder == root / "mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(data.split_files("test"))  # no temporary files left
    for fname in data.split_files("test"):
        assert data.file_sha256(folder / fname) == data.SHA256["mnist"][fname]
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    data.download("mnist", root, splits=("test",), mirror="file:///nowhere/")  # verified files are kept
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    # load_dataset(download=True) fetches a split found nowhere into the explicit data folder
    monkeypatch.setitem(data.MIRRORS, "mnist", _mirror(tmp_path / "mirror2"))
    monkeypatch.setattr(data, "SHIPPED_DATA", tmp_path / "no-shipped")
    monkeypatch.setattr(data, "SHARED_DATA", tmp_path / "no-shared")
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    with pytest.raises(FileNotFoundError, match="not here"):
        data.load_dataset("mnist", "test", data_root=fresh)
    images, labels = data.load_dataset("mnist", "test", data_root=fresh, download=True)
    assert images.shape == (10000, 28, 28) and (fresh / "mnist" / "t10k-labels-idx1-ubyte.gz").is_file()


def test_download_checksum_mismatch_writes_nothing(tmp_path):
    from dadq import data

    root = tmp_path / "root"
    bad = _mirror(tmp_path / "mirror", corrupt="t10k-labels-idx1-ubyte.gz")
    with pytest.raises(ValueError, match="checksum mismatch for file://.*t10k-labels-idx1-ubyte.gz"):
        data.download("mnist", root, splits=("test",), mirror=bad)
    assert [p.name for p in (root / "mnist").iterdir()] == ["t10k-images-idx3-ubyte.gz"]  # the good file only


def test_download_offline_says_what_to_do(tmp_path):
    import socket

    from dadq import data

    with socket.socket() as s:  # a port nobody listens on: the connection is refused, as offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionError, match=r"could not download http://127.0.0.1:\d+/t10k-images.*no network\?.*--data"):
        data.download("mnist", tmp_path, splits=("test",), mirror=f"http://127.0.0.1:{port}/")
    assert list((tmp_path / "mnist").iterdir()) == []
