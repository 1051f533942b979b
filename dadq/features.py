"""The FID feature network of the embedded default: a small MNIST classifier.

Inception-v3 features mean little on 28x28 grey digits, so the default FID uses the 128-d
penultimate layer of this classifier instead (trained by ``python -m scripts.train_featurenet``, shipped
in ``assets/default/featurenet.safetensors``). Scores computed with it are labelled
"FID (MNIST-classifier features, not Inception)" everywhere (see ``dadq.metrics.FID_LABEL``).

Input convention: float images [N, 1, 28, 28] with values in [0, 1] (0 = black background,
1 = white ink), i.e. MNIST pixels / 255. The DDPM works in [-1, 1]; callers map with (x + 1) / 2
(``dadq.metrics`` does this for you).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .io import file_sha256  # noqa: F401  (scripts import it from here too)
from .models import DEFAULT_MODEL_DIR

ARCH = "MnistFeatureNet-v1"
FEATURE_DIM = 128
NUM_CLASSES = 10
IMAGE_SHAPE = (1, 28, 28)
# MNIST train-set pixel mean/std on the [0, 1] scale; fixed constants, not learned state.
_MNIST_MEAN, _MNIST_STD = 0.1307, 0.3081

DEFAULT_FEATURENET_PATH = DEFAULT_MODEL_DIR / "featurenet.safetensors"
_BUILD_HINT = "Build it with `python -m scripts.train_featurenet` (about 3 minutes on one CPU core)."


class MnistFeatureNet(nn.Module):
    """Small CNN classifier for 1x28x28 digits; about 0.5 M parameters.

    conv3x3(32) -> pool -> conv3x3(64) -> pool -> conv3x3(64) -> fc(128) [features] -> fc(10).

    ``forward(x)``: x float [N, 1, 28, 28] in [0, 1] -> logits [N, 10].
    ``features(x)``: same input -> penultimate features [N, 128] (post-ReLU, float32).
    """

    def __init__(self, feature_dim: int = FEATURE_DIM, num_classes: int = NUM_CLASSES, dropout: float = 0.3):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.conv3 = nn.Conv2d(64, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 7 * 7, feature_dim)
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(feature_dim, num_classes)
        self.feature_dim = feature_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x float [N, 1, 28, 28] in [0, 1] -> features float [N, feature_dim]."""
        x = (x - _MNIST_MEAN) / _MNIST_STD
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # 14x14
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # 7x7
        x = F.relu(self.conv3(x))
        return F.relu(self.fc1(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x float [N, 1, 28, 28] in [0, 1] -> logits [N, num_classes]."""
        return self.fc2(self.drop(self.features(x)))


def weights_sha256(state: dict[str, torch.Tensor]) -> str:
    """Hex sha256 of a state dict's content: names, dtypes, shapes and bytes, in sorted name order.

    Unlike a file hash it does not depend on the safetensors header layout (whose metadata order
    varies between runs), so retraining with the same seed reproduces it.
    """
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def load_feature_net(path: str | os.PathLike | None = None) -> MnistFeatureNet:
    """Load the feature network from a safetensors file (default: the shipped asset).

    Returns the net in eval mode with gradients off. Raises ValueError naming the file and the fix
    when it is missing, unreadable, or holds weights of another architecture.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path) if path is not None else DEFAULT_FEATURENET_PATH
    if not path.is_file():
        raise ValueError(f"FID feature network {path} not found. {_BUILD_HINT}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        state = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for truncated/garbled files
        raise ValueError(f"FID feature network {path} is corrupt or not a safetensors file ({exc}). "
                         f"Delete it. {_BUILD_HINT}") from exc
    arch = meta.get("arch", ARCH)
    if arch != ARCH:
        raise ValueError(f"FID feature network {path} has architecture {arch!r}, expected {ARCH!r}. {_BUILD_HINT}")
    net = MnistFeatureNet(feature_dim=int(meta.get("feature_dim", FEATURE_DIM)))
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"FID feature network {path} does not match {ARCH} ({exc}). {_BUILD_HINT}") from exc
    net.eval().requires_grad_(False)
    return net


class FeatureExtractor(nn.Module):
    """Wraps MnistFeatureNet for ``torchmetrics.image.fid.FrechetInceptionDistance(feature=...)``.

    torchmetrics passes each ``update`` batch straight to this module (no resize, no uint8 cast for
    a custom module when ``normalize=True``), and reads ``num_features`` to size its states.

    forward(x): x float [N, 1, 28, 28] in [0, 1] (uint8 [0, 255] and 3-channel inputs are
    accepted too: uint8 is divided by 255, RGB is averaged to grey) -> features float64 [N, D].
    float64 output keeps torchmetrics' FID result in float64 (it casts the score to the feature dtype).
    The module never leaves eval mode, so dropout can never switch on inside a metric.
    """

    def __init__(self, net: MnistFeatureNet):
        super().__init__()
        self.net = net.eval()
        self.num_features: int = int(net.feature_dim)

    def train(self, mode: bool = True) -> "FeatureExtractor":
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        if x.dim() != 4 or x.shape[1] not in (1, 3) or tuple(x.shape[2:]) != IMAGE_SHAPE[1:]:
            raise ValueError(f"MNIST feature network expects images [N, 1, 28, 28], got {tuple(x.shape)}.")
        if x.shape[1] == 3:
            x = x.mean(dim=1, keepdim=True)
        p = next(self.net.parameters())
        with torch.no_grad():
            return self.net.features(x.to(device=p.device, dtype=p.dtype)).double()
