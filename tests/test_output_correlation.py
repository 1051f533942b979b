"""The output-level corrections of experiments.output_correlation remove what they model, and only that."""
import numpy as np
import torch

from experiments.output_correlation import CORRECTIONS, corrected_mse, fit, subtract_output_bias


def _eps(seed, shape=(8, 1, 6, 6)):
    return np.random.default_rng(seed).standard_normal(shape)


def test_each_correction_removes_the_error_it_models_on_held_out_inputs():
    pattern = 0.01 * _eps(0, (1, 6, 6))
    for err_of, removes in ((lambda e: 0.02 * e, "scale k (PTQD)"), (lambda e: pattern + 0 * e, "channel and pixel mean")):
        fit_eps, test_eps = _eps(1), _eps(2)
        c = fit(fit_eps, err_of(fit_eps))
        after = dict(zip(CORRECTIONS, corrected_mse(test_eps, err_of(test_eps), c)))
        assert after[removes] < 1e-12 * np.mean(err_of(test_eps) ** 2) + 1e-20
    # an input-dependent error with no scale or offset: nothing to remove, and the fitted pixel mean adds noise
    noise = lambda seed: 0.01 * _eps(seed + 10)  # noqa: E731
    c = fit(_eps(1), noise(1))
    mse = np.mean(noise(2) ** 2)
    after = corrected_mse(_eps(2), noise(2), c)
    assert all(a > 0.9 * mse for a in after) and after[2] > mse


def test_subtract_output_bias_shifts_eps_by_the_bias_of_each_samples_group(tiny_model, tiny_profile):
    import dadq

    prof = tiny_profile
    q = dadq.quantize(tiny_model, prof, dadq.allocate(prof, budget=4, target="w", method="uniform"))
    x = torch.randn(2, *prof.calib_x.shape[2:])
    t = torch.tensor([5, 995])  # the first and the last group
    with torch.no_grad():
        before = q.unet(x, t).sample
        bias = torch.randn(prof.num_groups, *x.shape[1:])
        subtract_output_bias(q, bias)
        after = q.unet(x, t).sample
    g = prof.groups.group_of(t)
    assert g[0] != g[1]
    torch.testing.assert_close(before - after, bias[g])
