"""Finished sweep cells kept on disk, so a time-boxed or interrupted sweep resumes where it stopped.

The full sweep costs hours of CPU; ``--max-minutes`` lets it run in slices (one per session, say),
each slice adding finished cells to ``<name>.cells.json`` beside the result. A cell is stored under a
key naming everything its numbers depend on: the model's fingerprint, a digest of the profile's
curves and ranges, the allocation, the sampler, the sample count and the seed. A retrained model or
a rebuilt profile therefore never reuses a stale number: its keys simply miss.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import time
from pathlib import Path

import numpy as np


class OutOfTime(Exception):
    """Raised before starting a unit of work once ``--max-minutes`` has passed."""


class Deadline:
    def __init__(self, minutes: float | None):
        # 0 minutes: start nothing new (rewrite a result and its plots from finished cells only)
        self.end = None if minutes is None else time.perf_counter() + 60.0 * float(minutes)

    def check(self, what: str) -> None:
        if self.end is not None and time.perf_counter() >= self.end:
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
    """{key: row} in one JSON file, rewritten atomically after every new cell. ``path=None``: memory only.

    A write merges with what is on disk first (under a lock), and a miss looks at the disk again, so
    cells that another process or ``python -m experiments.cells --merge`` added meanwhile are kept and used.
    The file also keeps every slice that computed cells into it ({slice id: record}), so a result
    rewritten later lists the slices of all processes that shared the cache, not only its own.
    """

    ABOUT = "finished cells of experiments/sweep.py; keys name what each depends on"

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.cells, self.slices = self._read()
        self.hits = 0
        self.added = 0  # cells this process computed and wrote

    def _read(self) -> tuple[dict[str, dict], dict[str, dict]]:
        if self.path is None or not self.path.exists():
            return {}, {}
        try:
            data = json.loads(self.path.read_text())
            return data["cells"], data.get("slices", {})  # caches written before slices were kept have none
        except (ValueError, KeyError) as e:
            raise SystemExit(f"{self.path}: not a cell cache ({e}); move it away to start afresh.") from None

    @staticmethod
    def key(*parts) -> str:
        return "|".join(str(p) for p in parts)

    def get(self, key: str) -> dict | None:
        row = self.cells.get(key)
        if row is None and self.path is not None:
            self.cells.update(self._read()[0])
            row = self.cells.get(key)
        if row is not None:
            self.hits += 1
            return dict(row)
        return None

    def put(self, key: str, row: dict) -> None:
        from benchmarks.common import jsonable

        self.update({key: jsonable(row)})
        self.added += 1

    def record_slice(self, slice_id: str, record: dict) -> None:
        """Keep (or refresh) one slice's record: command, start, seconds, cells computed."""
        from benchmarks.common import jsonable

        self.slices[slice_id] = jsonable(record)
        self.update({})

    def update(self, cells: dict[str, dict]) -> None:
        """Add finished cells and write the file: what is on disk, then ours, then ``cells``."""
        from dadq.io import write_json

        self.cells.update(cells)
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            disk_cells, disk_slices = self._read()
            self.cells = {**disk_cells, **self.cells}
            self.slices = {**disk_slices, **self.slices}
            data = {"about": self.ABOUT, "cells": self.cells}
            if self.slices:
                data["slices"] = self.slices
            write_json(self.path, data)


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="Copy finished cells from one cache into another. Keys name every "
                                            "input a number depends on, so a cell measured by another sweep "
                                            "(e.g. sweep_fid1k's FID rows) is the same number in this one.")
    p.add_argument("--merge", required=True, help="cache to copy from (e.g. experiments/results/sweep_fid1k.cells.json)")
    p.add_argument("--into", required=True, help="cache to add them to (e.g. experiments/results/sweep.cells.json)")
    args = p.parse_args(argv)
    src = CellCache(args.merge)
    if not src.cells:
        raise SystemExit(f"{args.merge}: no cells to merge")
    dst = CellCache(args.into)
    new = {k: v for k, v in src.cells.items() if k not in dst.cells}
    dst.update(new)
    print(f"{args.into}: {len(new)} cells added from {args.merge} ({len(src.cells) - len(new)} were there already)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
