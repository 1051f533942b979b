"""dadq's SSIM against scikit-image's reference implementation, on real sample pairs.

Every RD curve rests on ``dadq.distortion.ssim`` (torchmetrics; Gaussian 11x11, sigma 1.5, K1 0.01,
K2 0.03), and the app's paired scores on ``dadq.metrics.paired_psnr_ssim`` (the same kernel, data range
2.0). Both are compared with ``skimage.metrics.structural_similarity`` (gaussian_weights=True,
sigma=1.5, use_sample_covariance=False, the same data range) on FP vs 4-bit samples of the shipped
default model and on its FP vs 4-bit noise predictions.

What was found (scikit-image 0.26, torchmetrics 1.9):
- Per window the two are the same SSIM: both filter with a normalized 11-tap Gaussian (skimage:
  truncate 3.5 -> radius int(3.5 * 1.5 + 0.5) = 5), with the same constants. On the interior pixels,
  whose window lies inside the image, the maps agree to float32 rounding (about 1e-6).
- They average different pixels. skimage averages the map over the interior only: it crops
  (win_size - 1) // 2 = 5 pixels from every side, an 18x18 region of a 28x28 image. torchmetrics
  (since 1.4.3; 1.4.0 still cropped, see its pull request #2721) pads the image by 5 pixels with
  reflect padding (edge pixel not repeated: numpy/torch 'reflect', scipy 'mirror') and averages the
  map over all 28x28 pixels, so 460 of the 784 pixels come from windows that reach into the padding.
- On MNIST-like images the border is mostly black background where both images agree, so dadq's
  score is higher than skimage's default score, here by up to about 0.3 on image pairs.
- dadq's score equals skimage's on the reflect-padded images (skimage's crop then removes exactly the
  padding), to about 1e-5. That is what the tests pin, together with the interior agreement.
dadq keeps torchmetrics' full-image mean: every committed number was measured with it.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dadq
from dadq.distortion import SSIM_PARAMS, ssim
from dadq.metrics import paired_psnr_ssim

skimage_metrics = pytest.importorskip("skimage.metrics", reason="scikit-image is in the test extra: "
                                      "pip install -e '.[test]'")

TOL = 1e-3
PAD = 5  # (11 - 1) // 2: the Gaussian window's radius


def skimage_ssim(a: torch.Tensor, b: torch.Tensor, data_range: float, pad: bool) -> np.ndarray:
    """skimage's SSIM per pair of [N, 1, H, W] batches with dadq's pinned settings; ``pad``: on the images
    reflect-padded by the window radius first, as torchmetrics pads them."""
    assert SSIM_PARAMS["gaussian_kernel"] and SSIM_PARAMS["sigma"] == 1.5 and SSIM_PARAMS["kernel_size"] == 11
    prep = (lambda x: np.pad(x, PAD, mode="reflect")) if pad else (lambda x: x)  # noqa: E731
    return np.array([skimage_metrics.structural_similarity(
        prep(x[0].double().numpy()), prep(y[0].double().numpy()), gaussian_weights=True, sigma=1.5,
        use_sample_covariance=False, data_range=data_range, K1=SSIM_PARAMS["k1"], K2=SSIM_PARAMS["k2"])
        for x, y in zip(a, b)])


def interior_mean(a: torch.Tensor, b: torch.Tensor, data_range: float) -> np.ndarray:
    """The mean of dadq's (torchmetrics') SSIM map over the pixels whose window lies inside the image."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    _, full = structural_similarity_index_measure(a.float(), b.float(), reduction="none", return_full_image=True,
                                                  **{**SSIM_PARAMS, "data_range": data_range})
    return full[..., PAD:-PAD, PAD:-PAD].flatten(1).mean(1).double().numpy()


def check(ours: np.ndarray, a: torch.Tensor, b: torch.Tensor, data_range: float) -> float:
    """Asserts the two agreements; returns the largest gap between dadq's and skimage's default score."""
    assert not torch.equal(a, b)  # real, differing pairs
    plain = skimage_ssim(a, b, data_range, pad=False)
    np.testing.assert_allclose(ours, skimage_ssim(a, b, data_range, pad=True), rtol=0, atol=TOL)
    np.testing.assert_allclose(interior_mean(a, b, data_range), plain, rtol=0, atol=TOL)
    return float(np.abs(ours - plain).max())


@pytest.fixture(scope="module")
def default_pair():
    """The shipped default model, FP and quantized with a 4-bit allocation from the shipped profile."""
    model = dadq.load_model("default")
    prof = dadq.Profile.load(dadq.models.DEFAULT_MODEL_DIR / "profile.safetensors")
    alloc = dadq.allocate(prof, budget=4.0, method="exact")
    return model, dadq.quantize(model, prof, alloc)


def test_image_ssim_matches_skimage(default_pair):
    """The app's paired SSIM of FP vs quantized samples (DDIM-10, identical noise)."""
    model, qmodel = default_pair
    fp, q = dadq.sample_pair(model, qmodel, n=4, steps=10, seed=0, parallel=False, progress=False)
    fp, q = fp.clamp(-1, 1), q.clamp(-1, 1)
    gap = check(paired_psnr_ssim(fp, q)[1], fp, q, data_range=2.0)
    # the border pixels are why dadq's score is not skimage's default one (see the module docstring)
    assert gap > 0.01, gap


def test_noise_prediction_ssim_matches_skimage(default_pair):
    """The profile's SSIM term: FP vs quantized eps, at a low and a high timestep."""
    model, qmodel = default_pair
    x0 = dadq.sample(model, n=4, steps=10, seed=1, progress=False)
    gen = torch.Generator().manual_seed(2)
    for t in (50, 900):
        tt = torch.full((4,), t, dtype=torch.long)
        xt = model.scheduler.add_noise(x0, torch.randn(x0.shape, generator=gen), tt)
        eps_fp, eps_q = model.eps(xt, tt), qmodel.eps(xt, tt)
        check(ssim(eps_fp, eps_q).double().numpy(), eps_fp, eps_q, data_range=SSIM_PARAMS["data_range"])
