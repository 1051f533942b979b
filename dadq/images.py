"""Image conversions shared by the CLI, the app and the scripts."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .io import atomic_path


def to_uint8(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """float [N, C, H, W] in [-1, 1] -> uint8 [N, H, W] (1 channel) or [N, H, W, C]."""
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    u8 = ((np.clip(x, -1, 1) + 1) * 127.5).round().astype(np.uint8)
    return u8[:, 0] if u8.shape[1] == 1 else u8.transpose(0, 2, 3, 1)


def grid(images, nrow: int = 8, pad: int = 2) -> np.ndarray:
    """uint8 image grid [rows*(H+pad)+pad, nrow*(W+pad)+pad(, C)] of float images in [-1, 1]."""
    u8 = to_uint8(images)
    n, h, w = u8.shape[:3]
    nrow = max(1, min(nrow, n))
    ncol = math.ceil(n / nrow)
    out = np.zeros((ncol * (h + pad) + pad, nrow * (w + pad) + pad) + u8.shape[3:], dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = u8[i]
    return out


def save_grid(images, path: str | Path, nrow: int = 8) -> Path:
    """Write a PNG grid atomically."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(grid(images, nrow)).save(tmp, format="png")
    return Path(path)
