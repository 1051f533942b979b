"""The sweep's finished-cell cache: what lets the hours-long full sweep run in time-boxed slices."""
import dataclasses
import json
import time

import pytest

import dadq
from benchmarks.cells import CellCache, Deadline, OutOfTime, allocation_digest, profile_digest
from benchmarks.common import DEFAULT_PROFILE


def test_cells_persist_and_a_changed_profile_misses(tmp_path):
    prof = dadq.Profile.load(DEFAULT_PROFILE)
    a = dadq.allocate(prof, budget=4.0, target="wa", method="lagrangian")
    path = tmp_path / "x.cells.json"
    key = CellCache.key("fid", profile_digest(prof), allocation_digest(a), "n8", "seed1")
    CellCache(path).put(key, {"fid": 12.5})
    again = CellCache(path)
    assert again.get(key) == {"fid": 12.5} and again.hits == 1
    # one curve entry changed: another key, so no stale number is reused
    d_w = prof.d_w.copy()
    d_w[0, 0, 0] *= 1.01
    changed = dataclasses.replace(prof, d_w=d_w)
    assert profile_digest(changed) != profile_digest(prof)
    assert again.get(CellCache.key("fid", profile_digest(changed), allocation_digest(a), "n8", "seed1")) is None
    # another allocation of the same profile misses too
    b = dadq.allocate(prof, budget=6.0, target="wa", method="lagrangian")
    assert allocation_digest(b) != allocation_digest(a)
    assert json.loads(path.read_text())["cells"][key]["fid"] == 12.5


def test_corrupt_cache_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "bad.cells.json"
    path.write_text("{not json")
    with pytest.raises(SystemExit, match="bad.cells.json.*move it away"):
        CellCache(path)


def test_deadline():
    Deadline(None).check("anything")  # no limit: never stops
    d = Deadline(1e-6)
    time.sleep(0.01)
    with pytest.raises(OutOfTime, match="FID seed 3"):
        d.check("FID seed 3")
