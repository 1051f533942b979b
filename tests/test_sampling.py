import numpy as np
import pytest
import torch

import dadq


def test_identical_noise_and_determinism(tiny_model, tiny_profile):
    alloc = dadq.allocate(tiny_profile, budget=3, method="exact")
    q = dadq.quantize(tiny_model, tiny_profile, alloc)
    fp, qq = dadq.sample_pair(tiny_model, q, n=3, steps=5, seed=7)
    fp2 = dadq.sample(tiny_model, n=3, steps=5, seed=7)
    assert fp.shape == qq.shape == (3, 1, 16, 16)
    assert torch.equal(fp, fp2)
    assert fp.min() >= -1 and fp.max() <= 1
    assert not torch.equal(fp, qq)  # 3-bit quantization changes the images ...
    assert not torch.equal(fp, dadq.sample(tiny_model, n=3, steps=5, seed=8))  # ... and so does the seed


def test_ddpm_stochastic_steps_share_noise(tiny_model, tiny_profile):
    full = dadq.allocate(tiny_profile, budget=8, method="uniform")
    q = dadq.quantize(tiny_model, tiny_profile, full)
    fp, qq = dadq.sample_pair(tiny_model, q, n=2, steps=20, seed=1, sampler="ddpm")
    # at 8 bits everywhere the two trajectories see the same noise and stay close
    assert (fp - qq).abs().mean() < 0.2 * (fp - dadq.sample(tiny_model, n=2, steps=20, seed=2, sampler="ddpm")).abs().mean()


def test_bad_sampling_args(tiny_model):
    with pytest.raises(ValueError, match="steps"):
        dadq.sample(tiny_model, n=1, steps=0)
    with pytest.raises(ValueError, match="sampler"):
        dadq.sample(tiny_model, n=1, steps=5, sampler="euler")
