"""Image-quality metrics: FID (torchmetrics), paired PSNR/SSIM, and digit classification.

All image inputs are float tensors (or numpy arrays) [N, C, H, W] in [-1, 1], the DDPM's range.
Values outside [-1, 1] are clamped, as a saved/displayed image would be.

FID
---
The default FID runs torchmetrics' ``FrechetInceptionDistance`` on the 128-d penultimate features
of a small MNIST classifier (``dadq.features``), not on Inception-v3. Always show it as
``FID_LABEL``. The reference statistics (MNIST test set, 10k images) ship precomputed in
``assets/default/fid_reference_mnist.safetensors`` and are written straight into the metric's
real-feature states, so a call only runs the generated images through the network.

torchmetrics configuration (see ``FID_SETTINGS``): ``feature=FeatureExtractor`` (an nn.Module with
``num_features=128``), ``normalize=True`` (float [0, 1] inputs passed to the module unchanged),
``input_img_size=(1, 28, 28)``; ``antialias=True`` is passed but does not apply to a custom module
because torchmetrics resizes only for its own Inception (the classifier sees native 28x28).

``feature="inception"`` selects torchmetrics' Inception FID (2048-d) with local weights from
``inception_weights=`` or the ``DADQ_INCEPTION_WEIGHTS`` env var; it needs torch-fidelity.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch
from tqdm.auto import tqdm

from .features import (ARCH, DEFAULT_FEATURENET_PATH, IMAGE_SHAPE, FeatureExtractor, load_feature_net,
                       weights_sha256)
from .models import DEFAULT_MODEL_DIR

FID_LABEL = "FID (MNIST-classifier features, not Inception)"
INCEPTION_FID_LABEL = "FID (Inception-v3 2048-d pool features, torchmetrics)"
DEFAULT_REFERENCE_PATH = DEFAULT_MODEL_DIR / "fid_reference_mnist.safetensors"
# Optional, user-built: Inception statistics of the MNIST test set (see save_reference_stats).
DEFAULT_INCEPTION_REFERENCE_PATH = DEFAULT_MODEL_DIR / "fid_reference_mnist_inception.safetensors"
REFERENCE_FORMAT = "dadq-fid-reference-v1"
ANTIALIAS = True  # torchmetrics' default since 1.8; recorded, and only used by the Inception path.

try:
    from torchmetrics import __version__ as _TM_VERSION
except Exception:  # pragma: no cover
    _TM_VERSION = "unknown"

FID_SETTINGS: dict[str, dict] = {
    "mnist": {
        "label": FID_LABEL,
        "implementation": f"torchmetrics {_TM_VERSION} FrechetInceptionDistance(feature=nn.Module)",
        "feature_net": ARCH,
        "feature_layer": "penultimate fc, post-ReLU",
        "num_features": 128,
        "normalize": True,
        "input_img_size": IMAGE_SHAPE,
        "input_mapping": "x in [-1, 1] -> clamp((x + 1) / 2, 0, 1)",
        "antialias": ANTIALIAS,
        "antialias_applies": False,  # custom module: torchmetrics does no resize
        "reference": "MNIST test set, 10,000 images (assets/default/fid_reference_mnist.safetensors)",
        "covariance": "unbiased (n - 1), float64",
    },
    "inception": {
        "label": INCEPTION_FID_LABEL,
        "implementation": f"torchmetrics {_TM_VERSION} FrechetInceptionDistance(feature=2048)",
        "feature_net": "inception-v3-compat (torch-fidelity)",
        "num_features": 2048,
        "normalize": True,
        "input_mapping": "x in [-1, 1] -> clamp((x + 1) / 2, 0, 1), grey repeated to RGB, "
                         "torchmetrics casts to uint8 and resizes to 299x299",
        "antialias": ANTIALIAS,
        "antialias_applies": True,
        "weights": "inception_weights= or $DADQ_INCEPTION_WEIGHTS",
        "covariance": "unbiased (n - 1), float64",
    },
}

Progress = Optional[Callable[[float, str], None]]  # callable(fraction in [0, 1], text), as in dadq.sampling
ImageBatch = Union[torch.Tensor, np.ndarray]

# Module-global caches, keyed by (resolved path, mtime) so a rebuilt file is picked up.
_EXTRACTORS: dict[tuple, FeatureExtractor] = {}
_REFERENCES: dict[tuple, dict] = {}
_SHA: dict[tuple, str] = {}


def fid_label(feature: str = "mnist") -> str:
    """The label to show beside a score computed with ``feature``."""
    return FID_SETTINGS[_check_feature(feature)]["label"]


# ----------------------------------------------------------------------------------------------
# cached loading
# ----------------------------------------------------------------------------------------------

def _file_key(path: Path) -> tuple:
    path = Path(path).resolve()
    try:
        return (str(path), path.stat().st_mtime_ns)
    except OSError:
        return (str(path), None)


def _weights_sha(path: Path) -> str:
    """Content hash of the feature-net weights at ``path`` (see features.weights_sha256), cached."""
    key = _file_key(path)
    if key not in _SHA:
        _SHA[key] = weights_sha256(feature_extractor(path).net.state_dict())
    return _SHA[key]


def feature_extractor(path: str | os.PathLike | None = None) -> FeatureExtractor:
    """The cached FeatureExtractor around the feature net at ``path`` (default: shipped asset)."""
    path = Path(path) if path is not None else DEFAULT_FEATURENET_PATH
    key = _file_key(path)
    if key not in _EXTRACTORS:
        _EXTRACTORS[key] = FeatureExtractor(load_feature_net(path))
    return _EXTRACTORS[key]


def load_reference_stats(path: str | os.PathLike | None = None, check_feature_net: bool = True,
                         feature_net: str | os.PathLike | None = None) -> dict:
    """Read a reference-statistics file (cached).

    Returns {"mean": float64 [D], "cov": float64 [D, D], "n": int, "metadata": dict[str, str]}.
    For MNIST-feature files, ``check_feature_net`` verifies that the stored feature-net weights sha256 matches
    the feature net at ``feature_net`` (default: the shipped one), because statistics from other
    weights give meaningless FIDs.
    """
    from safetensors import safe_open

    path = Path(path) if path is not None else DEFAULT_REFERENCE_PATH
    fix = ("Rebuild the default with `python -m scripts.train_featurenet`, or write one with "
           "dadq.metrics.save_reference_stats(path, images).")
    if not path.is_file():
        raise ValueError(f"FID reference statistics {path} not found. {fix}")
    key = _file_key(path)
    if key not in _REFERENCES:
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:
            raise ValueError(f"FID reference statistics {path} are corrupt or not safetensors ({exc}). {fix}") from exc
        if meta.get("format") != REFERENCE_FORMAT or not {"mean", "cov", "n"} <= tensors.keys():
            raise ValueError(f"{path} is not a dadq FID reference file (format {meta.get('format')!r}, "
                             f"tensors {sorted(tensors)}). {fix}")
        mean, cov, n = tensors["mean"].double(), tensors["cov"].double(), int(tensors["n"].reshape(-1)[0])
        d = mean.numel()
        if mean.dim() != 1 or tuple(cov.shape) != (d, d) or n < 2:
            raise ValueError(f"{path} holds inconsistent statistics: mean {tuple(mean.shape)}, "
                             f"cov {tuple(cov.shape)}, n {n}. {fix}")
        _REFERENCES[key] = {"mean": mean, "cov": cov, "n": n, "metadata": meta}
    ref = _REFERENCES[key]
    if check_feature_net and ref["metadata"].get("feature", "mnist") == "mnist":
        want = ref["metadata"].get("featurenet_weights_sha256")
        net_path = Path(feature_net) if feature_net is not None else DEFAULT_FEATURENET_PATH
        have = _weights_sha(net_path) if net_path.is_file() else None
        if want and have and want != have:
            raise ValueError(f"FID reference {path} was computed with feature-net weights {want[:12]}..., but "
                             f"{net_path} has {have[:12]}...: the statistics are stale. {fix}")
    return ref


# ----------------------------------------------------------------------------------------------
# torchmetrics plumbing: the one place where features are computed and turned into statistics
# ----------------------------------------------------------------------------------------------

def _check_feature(feature: str) -> str:
    if feature not in FID_SETTINGS:
        raise ValueError(f"Unknown FID feature {feature!r}; choose one of {sorted(FID_SETTINGS)}.")
    return feature


def _inception_weights(path: str | os.PathLike | None) -> Path:
    from torchmetrics.utilities.imports import _TORCH_FIDELITY_AVAILABLE

    if not _TORCH_FIDELITY_AVAILABLE:
        raise ValueError("Inception FID needs torch-fidelity: `pip install torch-fidelity` (it must not pull in "
                         "a torchvision that mismatches your torch). Or use feature='mnist'.")
    path = path or os.environ.get("DADQ_INCEPTION_WEIGHTS")
    if not path:
        raise ValueError("Inception FID needs local weights (there is no download): pass inception_weights=PATH or "
                         "set DADQ_INCEPTION_WEIGHTS to torch-fidelity's 'weights-inception-2015-12-05-6726825d.pth'.")
    if not Path(path).is_file():
        raise ValueError(f"Inception weights {path} not found (from inception_weights= or DADQ_INCEPTION_WEIGHTS). "
                         "Put torch-fidelity's 'weights-inception-2015-12-05-6726825d.pth' there.")
    return Path(path)


def _new_metric(feature: str, inception_weights=None, feature_net=None):
    from torchmetrics.image.fid import FrechetInceptionDistance

    if feature == "mnist":
        # num_features on the module spares torchmetrics its dummy forward; normalize=True keeps float
        # [0, 1] inputs as they are (without it torchmetrics expects uint8).
        return FrechetInceptionDistance(feature=feature_extractor(feature_net), normalize=True,
                                        input_img_size=IMAGE_SHAPE, antialias=ANTIALIAS)
    weights = _inception_weights(inception_weights)
    return FrechetInceptionDistance(feature=2048, normalize=True, antialias=ANTIALIAS,
                                    feature_extractor_weights_path=str(weights))


def _prepare(images: ImageBatch, feature: str, what: str = "images", min_n: int = 2) -> torch.Tensor:
    """[-1, 1] images (tensor or array) [N, C, H, W] -> float32 [N, C', H, W] in [0, 1] for ``feature``."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{what} must be a torch tensor or numpy array [N, C, H, W], got {type(images).__name__}.")
    if not images.is_floating_point():
        raise ValueError(f"{what} must be floats in [-1, 1] (the DDPM range), got dtype {images.dtype}; "
                         "convert uint8 data with dadq.data.to_model_range.")
    if images.dim() == 3:  # [N, H, W] grey
        images = images[:, None]
    if images.dim() != 4:
        raise ValueError(f"{what} must be [N, C, H, W], got shape {tuple(images.shape)}.")
    if images.shape[0] < min_n:
        raise ValueError(f"Need at least {min_n} {what}, got {images.shape[0]}.")
    x = ((images.detach().float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0)
    if feature == "mnist":
        if x.shape[1] not in (1, 3) or tuple(x.shape[2:]) != IMAGE_SHAPE[1:]:
            raise ValueError(f"{FID_LABEL} needs 28x28 grey {what} [N, 1, 28, 28], got {tuple(images.shape)}; "
                             "use feature='inception' for other sizes.")
    elif x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)  # Inception wants RGB
    return x


def _accumulate(metric, x01: torch.Tensor, real: bool, batch_size: int, progress: Progress, desc: str) -> None:
    n = x01.shape[0]
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1.")
    bar = tqdm(total=n, desc=desc, leave=False, disable=n <= batch_size)
    for start in range(0, n, batch_size):
        metric.update(x01[start:start + batch_size], real=real)
        done = min(start + batch_size, n)
        bar.update(done - start)
        if progress is not None:
            progress(done / n, f"{desc}: {done}/{n} images")
    bar.close()


def _stats_from_states(metric, real: bool = True) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(mean float64 [D], cov float64 [D, D], n) exactly as torchmetrics' compute() forms them."""
    p = "real" if real else "fake"
    s = getattr(metric, f"{p}_features_sum")
    ss = getattr(metric, f"{p}_features_cov_sum")
    n = int(getattr(metric, f"{p}_features_num_samples"))
    mean = s / n
    cov = (ss - n * torch.outer(mean, mean)) / (n - 1)
    return mean.double(), cov.double(), n


def _set_real_states(metric, mean: torch.Tensor, cov: torch.Tensor, n: int) -> None:
    """Inverse of _stats_from_states: compute() then recovers ``mean``/``cov`` up to float64 rounding."""
    d = metric.real_features_sum.numel()
    if mean.numel() != d:
        raise ValueError(f"Reference statistics have {mean.numel()} features, the metric's network has {d}: "
                         "they come from another feature network.")
    dev = metric.real_features_sum.device
    mean = mean.to(dev, torch.float64)
    metric.real_features_sum = mean * n
    metric.real_features_cov_sum = cov.to(dev, torch.float64) * (n - 1) + n * torch.outer(mean, mean)
    metric.real_features_num_samples = torch.tensor(n, dtype=torch.long, device=dev)


# ----------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------

def reference_stats(images: ImageBatch, feature: str = "mnist", batch_size: int = 256, progress: Progress = None,
                    inception_weights=None, feature_net=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature statistics of real images [N, C, H, W] in [-1, 1] (N >= 2).

    Returns (mean float64 [D], cov float64 [D, D]), the unbiased (n - 1) covariance, computed by the
    same torchmetrics metric that ``fid`` uses. ``feature_net``: feature-net file (default: shipped).
    """
    feature = _check_feature(feature)
    x = _prepare(images, feature, "reference images")
    metric = _new_metric(feature, inception_weights, feature_net)
    _accumulate(metric, x, True, batch_size, progress, "FID reference features")
    mean, cov, _ = _stats_from_states(metric, real=True)
    return mean, cov


def save_reference_stats(path: str | os.PathLike, images: ImageBatch, feature: str = "mnist",
                         metadata: Optional[dict] = None, batch_size: int = 256, progress: Progress = None,
                         inception_weights=None, feature_net=None) -> dict:
    """Compute ``reference_stats(images)`` and write them atomically to a safetensors file.

    Tensors: mean float64 [D], cov float64 [D, D], n int64 [1]. Metadata (all strings): format,
    feature, feature_net, featurenet_weights_sha256 (MNIST feature only), feature_dim, n, torchmetrics
    version, plus ``metadata`` (e.g. dataset, split). Returns the metadata dict written.
    """
    from safetensors.torch import save_file

    from .io import atomic_path

    mean, cov = reference_stats(images, feature, batch_size, progress, inception_weights, feature_net)
    n = int(images.shape[0])
    meta = {
        "format": REFERENCE_FORMAT,
        "feature": feature,
        "feature_net": ARCH if feature == "mnist" else "inception-v3-compat",
        "feature_dim": str(mean.numel()),
        "n": str(n),
        "covariance": "unbiased (n - 1)",
        "torchmetrics": _TM_VERSION,
        "settings": json.dumps(FID_SETTINGS[feature], default=str),
    }
    if feature == "mnist":
        meta["featurenet_weights_sha256"] = _weights_sha(Path(feature_net) if feature_net is not None
                                                         else DEFAULT_FEATURENET_PATH)
    meta.update({str(k): str(v) for k, v in (metadata or {}).items()})
    tensors = {"mean": mean.contiguous(), "cov": cov.contiguous(), "n": torch.tensor([n], dtype=torch.int64)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return meta


def fid(images: ImageBatch, reference: Union[str, os.PathLike, torch.Tensor, np.ndarray] = "default",
        feature: str = "mnist", n: Optional[int] = None, batch_size: int = 256, progress: Progress = None,
        inception_weights: Optional[str] = None, feature_net: Optional[str] = None) -> float:
    """FID of generated images against a reference; lower is better.

    images: float [N, C, H, W] in [-1, 1] (N >= 2; 28x28 grey for feature="mnist").
    reference: "default" (shipped MNIST-test statistics; for "inception" the optional
        assets/default/fid_reference_mnist_inception.safetensors), a path to a file written by
        ``save_reference_stats``, or real images [M, C, H, W] in [-1, 1].
    feature: "mnist" (``FID_LABEL``) or "inception" (needs torch-fidelity and local weights from
        ``inception_weights`` or $DADQ_INCEPTION_WEIGHTS).
    n: use only the first n images.  progress: callable(fraction, text).
    feature_net: feature-net file for feature="mnist" (default: the shipped asset).
    Returns the FID as a Python float (squared feature-space distance, unitless). Small-N FID is
    biased upwards: compare scores only at equal N, feature network and reference.
    """
    feature = _check_feature(feature)
    if n is not None:
        if not 2 <= n <= len(images):
            raise ValueError(f"n={n} must lie in 2..{len(images)} (the number of images given).")
        images = images[:n]
    x = _prepare(images, feature)
    metric = _new_metric(feature, inception_weights, feature_net)

    if isinstance(reference, (torch.Tensor, np.ndarray)):
        half = (lambda f, s: progress(0.5 * f, s)) if progress else None
        _accumulate(metric, _prepare(reference, feature, "reference images"), True, batch_size, half,
                    "FID reference features")
        progress = (lambda f, s, p=progress: p(0.5 + 0.5 * f, s)) if progress else None
    else:
        if isinstance(reference, str) and reference == "default":
            path = DEFAULT_REFERENCE_PATH if feature == "mnist" else DEFAULT_INCEPTION_REFERENCE_PATH
        else:
            path = Path(reference)
        if feature == "inception" and path == DEFAULT_INCEPTION_REFERENCE_PATH and not path.is_file():
            raise ValueError(
                f"No Inception reference statistics at {path} (none ship: computing them takes long on a CPU). "
                "Pass reference=<real images [N, C, H, W] in [-1, 1]>, or build the file once with "
                "dadq.metrics.save_reference_stats(path, images, feature='inception', "
                "metadata={'dataset': 'mnist', 'split': 'test'}).")
        ref = load_reference_stats(path, feature_net=feature_net)
        ref_feature = ref["metadata"].get("feature", "mnist")
        if ref_feature != feature:
            raise ValueError(f"Reference {path} holds {ref_feature!r} features but feature={feature!r} was asked for.")
        _set_real_states(metric, ref["mean"], ref["cov"], ref["n"])

    _accumulate(metric, x, False, batch_size, progress, "FID features")
    return float(metric.compute())


def paired_psnr_ssim(a: ImageBatch, b: ImageBatch) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair PSNR (dB) and SSIM of two image batches [N, C, H, W] in [-1, 1].

    Both are clamped to [-1, 1] first. PSNR uses data_range 2.0 (inf for identical images); SSIM uses
    the kernel pinned in ``dadq.distortion.SSIM_PARAMS`` (Gaussian 11x11, sigma 1.5, k1 0.01, k2 0.03)
    with data_range 2.0 for images. Returns (psnr float64 [N], ssim float64 [N]).
    """
    from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

    from .distortion import SSIM_PARAMS

    a = torch.as_tensor(a).detach().float().cpu().clamp(-1, 1)
    b = torch.as_tensor(b).detach().float().cpu().clamp(-1, 1)
    if a.shape != b.shape or a.dim() != 4:
        raise ValueError(f"paired_psnr_ssim needs two batches of the same shape [N, C, H, W], "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}.")
    psnr = peak_signal_noise_ratio(a, b, data_range=2.0, reduction="none", dim=(1, 2, 3))
    ssim = structural_similarity_index_measure(a, b, reduction="none", **{**SSIM_PARAMS, "data_range": 2.0})
    return psnr.double().numpy(), ssim.double().numpy()


def classify(images: ImageBatch, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Digit labels by the feature net: images [N, 1, 28, 28] in [-1, 1] ->
    (labels int64 [N] in 0..9, confidence float32 [N] = max softmax probability)."""
    x = _prepare(images, "mnist", min_n=1)
    net = feature_extractor().net
    if x.shape[1] == 3:
        x = x.mean(dim=1, keepdim=True)
    labels, conf = [], []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            p = torch.softmax(net(x[start:start + batch_size]), dim=1)
            c, l = p.max(dim=1)
            labels.append(l)
            conf.append(c)
    return torch.cat(labels).numpy().astype(np.int64), torch.cat(conf).numpy().astype(np.float32)


# ----------------------------------------------------------------------------------------------
# checks and small statistics that UIs call before (or beside) the heavy work
# ----------------------------------------------------------------------------------------------

FID_MAX_N = 10000


def inception_weights(path: str | os.PathLike | None = None) -> Path:
    """The local Inception-v3 weights file (``path`` or $DADQ_INCEPTION_WEIGHTS); ValueError naming
    the fix when torch-fidelity or the weights are missing."""
    return _inception_weights(path)


_DATASET_STATS: dict = {}  # (dataset, feature) -> this process's stats file of that test split


def dataset_reference(dataset: str = "mnist", feature: str = "mnist"):
    """The FID reference for a model trained on ``dataset`` (one of ``dadq.data.DATASETS``): "default" (the
    shipped MNIST-test statistics) for MNIST; else a statistics file of that dataset's test split (10k images
    shipped in assets/data), computed once per process and feature network and reused by every later FID.
    Samples of a Fashion-MNIST model scored against MNIST digits would give a large FID that says nothing
    about quantization."""
    if dataset == "mnist":
        return "default"
    import tempfile

    from .data import load_dataset, to_model_range

    key = (dataset, _check_feature(feature))
    path = _DATASET_STATS.get(key)
    if path is None or not path.is_file():
        images = torch.from_numpy(to_model_range(load_dataset(dataset, "test")[0]))
        path = Path(tempfile.mkdtemp(prefix="dadq-fid-")) / f"{dataset}_test_{feature}.safetensors"
        save_reference_stats(path, images, feature, metadata={"dataset": dataset, "split": "test"})
        _DATASET_STATS[key] = path
    return path


def check_fid_request(sample_shape, n: int, feature: str = "mnist") -> None:
    """Fail fast, before any sampling, on an FID that cannot be computed: an unknown feature network,
    images of the wrong size for the MNIST features, n outside 2..FID_MAX_N, or Inception FID
    without its weights. ``sample_shape``: (C, H, W) of the model's images."""
    _check_feature(feature)
    shape = tuple(int(v) for v in sample_shape)
    if feature == "mnist" and shape != tuple(IMAGE_SHAPE):
        want, have = "x".join(map(str, IMAGE_SHAPE)), "x".join(map(str, shape))
        raise ValueError(f"{FID_LABEL} needs {want} images, but this model makes {have}. Load an MNIST-sized "
                         "model (e.g. the default) to compute FID; images are not resized.")
    if not 2 <= int(n) <= FID_MAX_N:
        raise ValueError(f"n={n}: FID needs 2 to {FID_MAX_N} samples.")
    if feature == "inception":
        inception_weights(None)


def correlation(x, y, log: bool = False) -> float:
    """Pearson correlation of two 1-d arrays (of their log10 with ``log=True``, positive values
    only); nan when fewer than two usable points or either side is constant."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if log:
        ok = (x > 0) & (y > 0)
        x, y = np.log10(x[ok]), np.log10(y[ok])
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def abs_difference(a: ImageBatch, b: ImageBatch) -> np.ndarray:
    """|a - b| of two image batches [N, C, H, W] in [-1, 1], scaled to [0, 1] (1 = the largest
    possible difference): float32, same shape."""
    a = np.clip(np.asarray(torch.as_tensor(a).detach().float().cpu()), -1, 1)
    b = np.clip(np.asarray(torch.as_tensor(b).detach().float().cpu()), -1, 1)
    if a.shape != b.shape:
        raise ValueError(f"abs_difference needs two batches of the same shape, got {a.shape} and {b.shape}.")
    return (np.abs(a - b) / 2.0).astype(np.float32)
