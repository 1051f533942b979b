"""Finished sweep cells kept on disk, so a time-boxed or interrupted sweep resumes where it stopped.

The full sweep costs hours of CPU; ``--max-minutes`` lets it run in slices (one per session, say),
each slice adding finished cells to ``<name>.cells.json`` beside the result. A cell is stored under a
key naming everything its numbers depend on: the model's fingerprint, a digest of the profile's
curves and ranges, the allocation, the sampler, the sample count and the seed. A retrained model or
a rebuilt profile therefore never reuses a stale number: its keys simply miss.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import numpy as np


class OutOfTime(Exception):
    """Raised before starting a unit of work once ``--max-minutes`` has passed."""


class Deadline:
    def __init__(self, minutes: float | None):
        self.end = None if not minutes else time.perf_counter() + 60.0 * float(minutes)

    def check(self, what: str) -> None:
        if self.end is not None and time.perf_counter() > self.end:
            raise OutOfTime(what)


def digest(*parts) -> str:
    """12 hex digits over arrays (their bytes, dtype and shape) and strings."""
    h = hashlib.sha1()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(f"{p.dtype}{p.shape}".encode())
            h.update(np.ascontiguousarray(p).tobytes())
        else:
            h.update(str(p).encode())
        h.update(b"|")
    return h.hexdigest()[:12]


def profile_digest(prof) -> str:
    """What of a profile a cell's numbers depend on: the model, the curves, the activation ranges and
    the calibration inputs (measured D is computed on them)."""
    return digest(prof.fingerprint, prof.d_w, prof.d_a, prof.act_range, prof.calib_t)


def allocation_digest(alloc) -> str:
    return digest(alloc.w_bits, alloc.a_bits, alloc.weight_mode)


class CellCache:
    """{key: row} in one JSON file, rewritten atomically after every new cell. ``path=None``: memory only."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.cells: dict[str, dict] = {}
        if self.path is not None and self.path.exists():
            try:
                self.cells = json.loads(self.path.read_text())["cells"]
            except (ValueError, KeyError) as e:
                raise SystemExit(f"{self.path}: not a cell cache ({e}); move it away to start afresh.") from None
        self.hits = 0

    @staticmethod
    def key(*parts) -> str:
        return "|".join(str(p) for p in parts)

    def get(self, key: str) -> dict | None:
        row = self.cells.get(key)
        if row is not None:
            self.hits += 1
            return dict(row)
        return None

    def put(self, key: str, row: dict) -> None:
        from dadq.io import write_json

        from benchmarks.common import jsonable

        self.cells[key] = jsonable(row)
        if self.path is not None:
            write_json(self.path, {"about": "finished cells of benchmarks/sweep.py; keys name what each depends on",
                                   "cells": self.cells})
