"""Metrics on real MNIST data with the shipped feature network and reference statistics (no mocks)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dadq import metrics
from dadq.data import load_dataset, to_model_range
from dadq.features import DEFAULT_FEATURENET_PATH, FeatureExtractor, load_feature_net

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def mnist_test():
    images, labels = load_dataset("mnist", "test")
    return torch.from_numpy(to_model_range(images)), torch.from_numpy(labels.astype(np.int64))


@pytest.fixture(scope="module")
def mnist_other_500(mnist_test):
    """500 random real digits from outside test[:1000] (the tensor reference below), from the shipped test split
    so that the tests run on a fresh clone. They are inside the default's 10k reference statistics."""
    images, _ = mnist_test
    return images[1000 + _subset(len(images) - 1000, 500, seed=1)]


def _subset(total: int, n: int, seed: int) -> np.ndarray:
    # A seeded random subset: MNIST's test file is ordered (its two halves come from different
    # writer pools), so a slice like the last 500 is not a fair sample (FID ~70 vs ~10-18 for random).
    return np.random.default_rng(seed).choice(total, n, replace=False)


def _noise(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)).clamp(-1, 1)


def test_feature_net_accuracy(mnist_test):
    images, labels = mnist_test
    pred, conf = metrics.classify(images[:1000])
    assert pred.shape == (1000,) and pred.dtype == np.int64
    assert conf.shape == (1000,) and np.all((conf > 0) & (conf <= 1))
    acc = float((pred == labels[:1000].numpy()).mean())
    assert acc >= 0.98, acc


def test_feature_extractor_shape():
    ext = FeatureExtractor(load_feature_net())
    out = ext(torch.rand(4, 1, 28, 28))
    assert out.shape == (4, ext.num_features) and out.dtype == torch.float64
    ext.train()
    assert not ext.training and not ext.net.training  # dropout can never switch on inside a metric


def test_fid_real_far_below_noise(mnist_test):
    images, _ = mnist_test
    # These 500 test images are inside the 10k reference; noise is nothing like digits.
    real = metrics.fid(images[_subset(len(images), 500, seed=0)])
    noise = metrics.fid(_noise(500))
    assert 0 <= real < noise / 5, (real, noise)


def test_fid_real_images_small_and_tensor_reference(mnist_test, mnist_other_500):
    images, _ = mnist_test
    real_vs_default = metrics.fid(mnist_other_500)
    noise = metrics.fid(_noise(500, seed=1))
    assert real_vs_default < noise / 5, (real_vs_default, noise)
    # A tensor reference (other images) gives a finite score of the same order; vs itself it is ~0.
    real_vs_tensor = metrics.fid(mnist_other_500, reference=images[:1000])
    assert 0 <= real_vs_tensor < noise / 5, (real_vs_tensor, noise)
    assert abs(metrics.fid(images[:300], reference=images[:300])) < 1e-6
    # n= takes the first n images.
    assert metrics.fid(mnist_other_500, n=200) == pytest.approx(metrics.fid(mnist_other_500[:200]))


def test_reference_states_reproduce_stored_stats(mnist_test):
    images, _ = mnist_test
    ref = metrics.load_reference_stats()
    assert ref["n"] == 10000 and ref["metadata"]["split"] == "test"
    metric = metrics._new_metric("mnist")
    metrics._set_real_states(metric, ref["mean"], ref["cov"], ref["n"])
    mean, cov, n = metrics._stats_from_states(metric, real=True)
    assert n == ref["n"]
    torch.testing.assert_close(mean, ref["mean"], rtol=0, atol=1e-12)
    torch.testing.assert_close(cov, ref["cov"], rtol=0, atol=1e-9 * float(ref["cov"].abs().max()))
    # The stored stats are what reference_stats computes on the same images.
    mean2, cov2 = metrics.reference_stats(images[:10000])
    torch.testing.assert_close(mean2, ref["mean"], rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(cov2, ref["cov"], rtol=1e-5, atol=1e-7)


def test_reference_file_roundtrip(tmp_path, mnist_other_500, mnist_test):
    images, _ = mnist_test
    path = tmp_path / "ref.safetensors"
    meta = metrics.save_reference_stats(path, images[:1000], metadata={"dataset": "mnist", "split": "test[:1000]"})
    assert len(meta["featurenet_weights_sha256"]) == 64 and meta["n"] == "1000"
    via_file = metrics.fid(mnist_other_500, reference=path)
    via_tensor = metrics.fid(mnist_other_500, reference=images[:1000])
    assert via_file == pytest.approx(via_tensor, rel=1e-6)


def test_stale_reference_is_refused(tmp_path, mnist_test):
    # Statistics from other feature-net weights must not be mixed with the shipped net.
    from safetensors.torch import save_file

    from dadq.features import MnistFeatureNet

    torch.manual_seed(0)
    other = tmp_path / "other_net.safetensors"
    save_file(MnistFeatureNet().state_dict(), str(other))
    ref = tmp_path / "other_ref.safetensors"
    metrics.save_reference_stats(ref, mnist_test[0][:50], feature_net=other)
    assert metrics.fid(mnist_test[0][50:100], reference=ref, feature_net=other) >= 0
    with pytest.raises(ValueError, match="stale"):
        metrics.fid(mnist_test[0][50:100], reference=ref)


def test_paired_psnr_ssim(mnist_test):
    images, _ = mnist_test
    a = images[:16]
    psnr, ssim = metrics.paired_psnr_ssim(a, a.clone())
    assert psnr.shape == (16,) and ssim.shape == (16,)
    assert np.all(np.isinf(psnr) | (psnr > 100))
    np.testing.assert_allclose(ssim, 1.0, atol=1e-6)
    noisy = (a + 0.2 * _noise(16)).clamp(-1, 1)
    psnr_n, ssim_n = metrics.paired_psnr_ssim(a, noisy)
    assert np.all(np.isfinite(psnr_n)) and np.all(psnr_n < 40) and np.all(psnr_n > 5)
    assert np.all(ssim_n < 0.95)
    # Stronger noise -> lower scores, per pair.
    psnr_m, ssim_m = metrics.paired_psnr_ssim(a, (a + 0.6 * _noise(16)).clamp(-1, 1))
    assert np.all(psnr_m < psnr_n) and np.all(ssim_m < ssim_n)


def test_missing_or_corrupt_feature_net(tmp_path):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(ValueError, match="nope.safetensors"):
        load_feature_net(missing)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file at all")
    with pytest.raises(ValueError, match="bad.safetensors"):
        load_feature_net(bad)
    assert DEFAULT_FEATURENET_PATH.is_file()


def test_bad_inputs(mnist_test):
    images, _ = mnist_test
    with pytest.raises(ValueError, match="uint8|floats"):
        metrics.fid((images[:10] * 127.5 + 127.5).to(torch.uint8))
    with pytest.raises(ValueError, match="28x28"):
        metrics.fid(torch.zeros(10, 1, 32, 32))
    with pytest.raises(ValueError, match="feature"):
        metrics.fid(images[:10], feature="vgg")
    with pytest.raises(ValueError, match="not found"):
        metrics.fid(images[:10], reference="/nonexistent/ref.safetensors")


def test_inception_needs_setup(mnist_test, monkeypatch):
    # torch-fidelity and the weights are absent here: the error must say what to install / where.
    monkeypatch.delenv("DADQ_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(ValueError, match="torch-fidelity|DADQ_INCEPTION_WEIGHTS"):
        metrics.fid(mnist_test[0][:10], feature="inception")


def test_labels():
    assert metrics.FID_LABEL == "FID (MNIST-classifier features, not Inception)"
    assert metrics.fid_label("mnist") == metrics.FID_LABEL
    assert metrics.FID_SETTINGS["mnist"]["antialias"] is True
    assert metrics.FID_SETTINGS["mnist"]["normalize"] is True
    assert metrics.FID_SETTINGS["mnist"]["num_features"] == 128


def test_a_fashion_model_is_scored_against_fashion_mnist():
    """assets/fashion declares its data (dadq.json), and its FID reference is that test split, not MNIST."""
    import dadq
    from dadq.data import load_dataset, to_model_range
    from dadq.metrics import dataset_reference, fid, load_reference_stats

    assert dadq.load_model("assets/fashion").info["dataset"] == "fashion-mnist"
    assert dataset_reference("mnist") == "default"
    ref = dataset_reference("fashion-mnist")
    assert load_reference_stats(ref)["metadata"]["n"] == "10000" and dataset_reference("fashion-mnist") == ref
    clothes = torch.from_numpy(to_model_range(load_dataset("fashion-mnist", "test")[0][-512:]))
    assert fid(clothes, reference=ref) < 0.2 * fid(clothes, reference="default")
    with pytest.raises(ValueError, match="Unknown dataset"):
        dataset_reference("cifar10")
