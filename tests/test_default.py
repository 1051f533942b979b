"""The embedded default: shipped model, shipped profile, and the trainer that makes them."""
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
    t0 = time.perf_counter()
    model = dadq.load_model("default")
    load_s = time.perf_counter() - t0
    assert load_s < 5.0, f"load took {load_s:.1f} s"
    imgs = dadq.sample(model, n=4, steps=20, seed=0)
    assert imgs.shape == (4, 1, 28, 28)
    _, conf = classify(imgs)
    assert (conf > 0.5).sum() >= 3, conf


def test_shipped_profile_matches_default_model():
    model = dadq.load_model("default")
    prof = dadq.Profile.load(dadq.models.DEFAULT_MODEL_DIR / "profile.safetensors")
    prof.check_model(model)
    assert prof.num_groups == 10 and prof.bits.tolist() == list(range(2, 9))
    assert np.isfinite(prof.d_w).all() and np.isfinite(prof.d_a).all()
    assert prof.num_layers == 64
    # the paper's qualitative finding on this model: allocation works and beats uniform bits
    a = dadq.allocate(prof, budget=4, method="exact")
    u = dadq.allocate(prof, budget=4, method="uniform")
    assert a.predicted.sum() < u.predicted.sum()


def test_assets_size_limit():
    total = sum(f.stat().st_size for f in (ROOT / "assets").rglob("*") if f.is_file() and not f.name.startswith(".ckpt"))
    assert total <= 30e6, f"assets/ holds {total / 1e6:.1f} MB"


def test_trainer_runs_and_resumes(tmp_path):
    out = tmp_path / "m"
    ckpt = tmp_path / "ck.pt"
    base = [sys.executable, str(ROOT / "scripts" / "train_default.py"), "--tiny", "--batch", "8", "--grid-steps", "0",
            "--out", str(out), "--checkpoint", str(ckpt)]
    r = subprocess.run(base + ["--steps", "20"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").exists() and ckpt.exists()
    r = subprocess.run(base + ["--steps", "30", "--resume"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    log = (out / "train.log").read_text()
    assert "# start step=0" in log and "# start step=20" in log
    import json

    meta = json.loads((out / "training.json").read_text())
    assert meta["steps"] == 30
    m = dadq.load_model(str(out))
    assert m.sample_shape == (1, 28, 28)
