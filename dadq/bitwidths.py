"""Bit widths: how full precision is written, how users write a set of widths, and how a width maps
to its column in a profile's curves. Torch-free, so figures and parsers need no model code.
"""
from __future__ import annotations

import numpy as np

FP_BITS = 32  # how full precision is written in bit arrays: float32 storage
MAX_BITS = 16  # the widest width that is quantized; anything wider (or <= 0) runs at full precision


def is_fp(bits: int) -> bool:
    return bits <= 0 or bits > MAX_BITS


def parse_bits(text) -> list[int]:
    """'2-8' (a range, both ends included) or '2,4,8' (a list) -> sorted distinct ints in 1..16."""
    text = str(text).strip().replace(" ", "")
    try:
        if "-" in text:
            lo, hi = text.split("-")
            bits = list(range(int(lo), int(hi) + 1))
        else:
            bits = [int(b) for b in text.split(",") if b]
    except ValueError:
        bits = []
    if not bits or min(bits) < 1 or max(bits) > MAX_BITS:
        raise ValueError(f"bits {text!r}: write a range like 2-8 or a list like 2,4,8 (widths 1 to {MAX_BITS}).")
    return sorted(set(bits))


def option_index(options, bits, fp_ok: bool = True):
    """Bits (an int or an int array, e.g. [G, L]) -> the index of each width in ``options`` (int [M],
    a profile's candidate widths), -1 where full precision. Same shape as ``bits``.

    A width without a curve point (not in ``options``; with ``fp_ok=False`` FP too) is a
    ValueError naming the choices.
    """
    options = [int(b) for b in np.asarray(options).ravel()]
    lookup = {b: m for m, b in enumerate(options)}
    arr = np.asarray(bits, dtype=np.int64)
    flat = arr.ravel()
    idx = np.array([-1 if fp_ok and is_fp(b) else lookup.get(b, -2) for b in flat.tolist()], dtype=np.int64)
    if (idx == -2).any():
        bad = sorted(set(flat[idx == -2].tolist()))
        fp = f" (or {FP_BITS} = full precision)" if fp_ok else ""
        raise ValueError(f"{bad[0] if len(bad) == 1 else bad} bits were not profiled; choose one of {options}{fp}.")
    return int(idx[0]) if arr.ndim == 0 else idx.reshape(arr.shape)
