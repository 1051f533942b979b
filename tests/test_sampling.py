import pytest
import torch

import dadq


def test_identical_noise_and_determinism(tiny_model, tiny_profile):
    alloc = dadq.allocate(tiny_profile, budget=3, method="exact")
    q = dadq.quantize(tiny_model, tiny_profile, alloc)
    fp, qq = dadq.sample_pair(tiny_model, q, n=3, steps=5, seed=7, parallel=False)
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


def test_parallel_chains_match_sequential(tiny_model, tiny_profile):
    alloc = dadq.allocate(tiny_profile, budget=3, method="exact")
    q = dadq.quantize(tiny_model, tiny_profile, alloc)
    threads = torch.get_num_threads()
    seen, times_par, times_seq = [], {}, {}
    par = dadq.sample_pair(tiny_model, q, n=3, steps=6, seed=5, parallel=True, timings=times_par,
                           progress=lambda f, text: seen.append(f))
    seq = dadq.sample_pair(tiny_model, q, n=3, steps=6, seed=5, parallel=False, timings=times_seq)
    # The thread count changes the order of sums inside convolutions, so only float rounding differs ...
    assert torch.allclose(par[0], seq[0], atol=1e-4) and torch.allclose(par[1], seq[1], atol=1e-4)
    # ... and a chain on threads // 2 threads is exactly what one sample() on that many threads gives.
    torch.set_num_threads(max(1, threads // 2))
    try:
        assert torch.equal(par[0], dadq.sample(tiny_model, n=3, steps=6, seed=5))
        assert torch.equal(par[1], dadq.sample(q, n=3, steps=6, seed=5))
    finally:
        torch.set_num_threads(threads)
    assert torch.get_num_threads() == threads  # the halved thread count is restored
    assert times_par["parallel"] and not times_seq["parallel"]
    assert times_par["fp_s"] > 0 and times_par["quantized_s"] > 0
    assert len(seen) == 12 and max(seen) == 1.0 and min(seen) > 0


def test_parallel_chain_error_propagates(tiny_model):
    threads = torch.get_num_threads()
    with pytest.raises(ValueError, match="steps"):
        dadq.sample_pair(tiny_model, tiny_model, n=1, steps=0, parallel=True)
    assert torch.get_num_threads() == threads  # restored after the failed chain


def test_progress_bar_only_without_a_callback(tiny_model, capfd):
    """The CLI's tqdm bar shows when no callback is given; a UI's callback (the app) gets no bar in its log."""
    dadq.sample(tiny_model, n=1, steps=20, seed=0)
    assert "sampling" in capfd.readouterr().err  # tqdm writes to stderr
    seen = []
    dadq.sample_pair(tiny_model, tiny_model, n=1, steps=20, seed=0, parallel=False,
                     progress=lambda f, text: seen.append(f))
    assert capfd.readouterr().err == "" and len(seen) == 40 and seen[-1] == 1.0
    dadq.sample(tiny_model, n=1, steps=20, seed=0, progress=False)
    assert capfd.readouterr().err == ""


def test_batches_share_one_scheduler(tiny_model):
    """Batches of one call run on one scheduler: DDIM (eta 0) over 2 + 1 equals one batch of 3."""
    whole = dadq.sample(tiny_model, n=3, steps=5, seed=3)
    split = dadq.sample(tiny_model, n=3, steps=5, seed=3, batch_size=2)
    assert torch.allclose(whole, split, atol=1e-5)
