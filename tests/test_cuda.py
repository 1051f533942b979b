"""The CUDA code paths agree with the CPU ones: profile, allocate, quantize and sample on a GPU.

Skipped where torch sees no CUDA device (CI); run on a GPU machine with
``python -m pytest -q tests/test_cuda.py``.
"""
import numpy as np
import pytest
import torch

import dadq

from .conftest import TINY

GPU = "cuda"
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def pair():
    """The same random-weight UNet on the CPU and on the GPU."""
    return dadq.load_model(dict(TINY), seed=0), dadq.load_model(dict(TINY), seed=0, device=GPU)


def test_fp_sampling_matches_cpu(pair):
    cpu, gpu = pair
    a = dadq.sample(cpu, n=4, steps=10, seed=3)
    b = dadq.sample(gpu, n=4, steps=10, seed=3)  # dadq turns cuDNN's TF32 off for its own forward passes
    print(f"FP sample max |GPU - CPU|: {(a - b).abs().max():.2e}")
    assert b.device.type == "cpu"  # samples come back on the CPU wherever the model runs
    assert (a - b).abs().max() < 1e-3
    assert torch.backends.cudnn.allow_tf32  # ... and restores the user's setting


def test_profile_and_quantized_sampling_match_cpu():
    """The shipped model's profile on both devices. Entries are compared in aggregate: a rounding-level
    change in a calibration input can move one (layer, group, bits) entry a lot (values near a rounding
    boundary, the clip search switching ratio), even between two CPU runs that differ by 1e-5 in the weights."""
    kw = dict(groups=2, bits=[2, 4, 8], calib_per_group=4, seed=0, layers=["conv_in", "down_blocks.1.*", "conv_out"])
    cpu, gpu = dadq.load_model("default"), dadq.load_model("default", device=GPU)
    p_cpu = dadq.profile(cpu, **kw)
    p_gpu = dadq.profile(gpu, **kw)
    assert gpu.device.type == GPU and np.isfinite(p_gpu.d_w).all() and np.isfinite(p_gpu.d_a).all()
    for name in ("d_w", "d_a"):
        total_cpu, total_gpu = getattr(p_cpu, name).sum((0, 1)), getattr(p_gpu, name).sum((0, 1))
        print(f"{name} summed per bit width: CPU {total_cpu}, GPU {total_gpu}")
        assert np.allclose(total_gpu, total_cpu, rtol=0.1), name
    alloc = dadq.allocate(p_gpu, budget=4, method="exact")
    q_cpu, q_gpu = dadq.quantize(cpu, p_gpu, alloc), dadq.quantize(gpu, p_gpu, alloc)
    assert q_gpu.device.type == GPU
    a = dadq.sample(q_cpu, n=4, steps=10, seed=3)
    b = dadq.sample(q_gpu, n=4, steps=10, seed=3)
    fp = dadq.sample(cpu, n=4, steps=10, seed=3)
    print(f"4-bit sample vs FP {(a - fp).abs().mean():.3e}; GPU vs CPU {(a - b).abs().mean():.3e}")
    # 4-bit quantization moves the images far more than the device does
    assert (a - b).abs().mean() < 0.1 * (a - fp).abs().mean()
