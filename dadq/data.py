"""MNIST-format IDX datasets, read with numpy straight from the original ``.gz`` files.

No torchvision and no download: the files live in ``../shared/data/<name>/`` beside the checkout,
or wherever ``DADQ_DATA`` points.
"""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

DATASETS = ("mnist", "fashion-mnist")


def data_root() -> Path:
    """Folder that holds ``mnist/`` and ``fashion-mnist/``."""
    env = os.environ.get("DADQ_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one gzip-compressed IDX file. Images -> uint8 [N, rows, cols]; labels -> uint8 [N]."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"IDX file {path} not found. Put the MNIST/Fashion-MNIST .gz files there or set DADQ_DATA "
            "to the folder holding mnist/ and fashion-mnist/."
        )
    with gzip.open(path, "rb") as f:
        raw = f.read()
    magic = int.from_bytes(raw[0:4], "big")
    if magic == 2051:
        n, rows, cols = (int.from_bytes(raw[i:i + 4], "big") for i in (4, 8, 12))
        data = np.frombuffer(raw, dtype=np.uint8, offset=16)
        if data.size != n * rows * cols:
            raise ValueError(f"{path} is truncated: expected {n * rows * cols} pixels, found {data.size}.")
        return data.reshape(n, rows, cols)
    if magic == 2049:
        n = int.from_bytes(raw[4:8], "big")
        data = np.frombuffer(raw, dtype=np.uint8, offset=8)
        if data.size != n:
            raise ValueError(f"{path} is truncated: expected {n} labels, found {data.size}.")
        return data
    raise ValueError(f"{path} is not an IDX image or label file (magic {magic}, expected 2051 or 2049).")


def load_dataset(name: str = "mnist", split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [N, 28, 28] and labels uint8 [N] of ``name`` ('mnist' | 'fashion-mnist'),
    ``split`` ('train' | 'test')."""
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; choose one of {DATASETS}.")
    if split not in ("train", "test"):
        raise ValueError(f"Unknown split {split!r}; choose 'train' or 'test'.")
    prefix = "train" if split == "train" else "t10k"
    root = data_root() / name
    images = read_idx(root / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(root / f"{prefix}-labels-idx1-ubyte.gz")
    return images, labels


def to_model_range(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W] -> float32 [N, 1, H, W] in [-1, 1], the range the DDPM is trained on."""
    return (images.astype(np.float32)[:, None] / 127.5) - 1.0
