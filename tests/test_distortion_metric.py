"""The pluggable distortion metric: each option on known inputs, and the profile records it."""
import dataclasses

import pytest
import torch
from torchmetrics.functional.image import structural_similarity_index_measure

import dadq
from dadq.distortion import METRICS, SSIM_PARAMS, distortion, distortion_per_sample


def test_each_metric_on_known_inputs():
    torch.manual_seed(0)
    a = torch.randn(3, 1, 16, 16)
    b = a + 0.3 * torch.randn(3, 1, 16, 16)
    mse = torch.nn.functional.mse_loss(b, a, reduction="none").flatten(1).mean(1)
    ssim = structural_similarity_index_measure(a, b, reduction="none", **SSIM_PARAMS)
    assert torch.allclose(distortion_per_sample(a, b, "mse"), mse)
    assert torch.allclose(distortion_per_sample(a, b, "ssim"), 1 - ssim)
    assert torch.allclose(distortion_per_sample(a, b, "ssim+mse"), 1 - ssim + mse)
    assert distortion(a, b) == pytest.approx(float((1 - ssim + mse).mean()))  # the paper's is the default
    assert distortion(a, b, "mse") == pytest.approx(float(torch.nn.functional.mse_loss(b, a)))
    for m in METRICS:
        assert distortion(a, a, m) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="choose one of"):
        distortion(a, b, "psnr")


def test_profile_records_the_metric_and_old_profiles_mean_the_paper(tiny_model):
    kw = dict(groups=1, bits=[2], calib_per_group=2, seed=0, layers=["conv_out"])
    by_mse = dadq.profile(tiny_model, metric="mse", **kw)
    paper = dadq.profile(tiny_model, **kw)
    assert by_mse.settings()["metric"] == "mse" and paper.settings()["metric"] == "ssim+mse"
    assert 0 < by_mse.d_w[0, 0, 0] < paper.d_w[0, 0, 0]  # the same point without its 1 - SSIM term
    old = dataclasses.replace(paper, meta={k: v for k, v in paper.meta.items()
                                           if k not in ("rounding", "bias_correction", "metric", "split_concat")})
    s = old.settings()
    assert (s["rounding"], s["bias_correction"], s["metric"], s["split_concat"]) == ("rtn", False, "ssim+mse", False)
