"""The solvers on plain arrays, against brute force."""
import itertools

import numpy as np
import pytest

import dadq
from dadq.allocate import hull_path, smallest_budget


def brute_force(d, s, budget):
    n, m = d.shape
    best = None
    for c in itertools.product(range(m), repeat=n):
        c = np.array(c)
        if s[np.arange(n), c].sum() <= budget + 1e-9:
            val = d[np.arange(n), c].sum()
            if best is None or val < best:
                best = val
    return best


def random_instance(rng, convex=False, integer=True):
    n, m = int(rng.integers(1, 6)), int(rng.integers(1, 6))
    s = rng.integers(1, 30, (n, m)).astype(float) if integer else rng.random((n, m)) * 10
    d = rng.random((n, m))  # arbitrary: non-convex, non-monotone curves
    if convex:
        s = np.sort(s, axis=1)
        d = np.sort(d, axis=1)[:, ::-1]
    budget = rng.uniform(smallest_budget(s), s.max(1).sum() * 1.05)
    return d, s, budget


@pytest.mark.parametrize("integer", [True, False])
def test_exact_equals_brute_force(integer):
    rng = np.random.default_rng(1 if integer else 2)
    for _ in range(150):
        d, s, b = random_instance(rng, integer=integer)
        ch = dadq.solve(d, s, b, method="exact")
        rows = np.arange(len(d))
        assert s[rows, ch].sum() <= b + 1e-9
        assert d[rows, ch].sum() == pytest.approx(brute_force(d, s, b), abs=1e-9)


def test_exact_paths_equal_brute_force():
    # Coprime-ish large sizes defeat both DP tables, so dadq.solve falls back to the MILP; the MILP
    # and the reduced-cost-fixing DP are also checked on their own.
    from dadq.allocate import _dp, _milp, _reduced_cost_keep

    rng = np.random.default_rng(3)
    rows, fallbacks = None, 0
    for _ in range(20):
        d, s, b = random_instance(rng)
        big = s * 1_000_003 + rng.integers(0, 1000, s.shape)
        bb = b * 1_000_003
        if bb < smallest_budget(big):
            continue
        rows = np.arange(len(d))
        want = brute_force(d, big, bb)
        fallbacks += _dp(d, big, bb) is None  # too large a table: the fall-back is really exercised
        for ch in (dadq.solve(d, big, bb, "exact"), _milp(d, big, bb)):
            assert big[rows, ch].sum() <= bb + 1e-6
            assert d[rows, ch].sum() == pytest.approx(want, abs=1e-9)
        ch = _dp(d, s, b, _reduced_cost_keep(d, s, b))
        assert d[rows, ch].sum() == pytest.approx(brute_force(d, s, b), abs=1e-9)
    assert fallbacks >= 5


def test_lagrangian_feasible_and_exact_on_hull():
    rng = np.random.default_rng(4)
    for _ in range(200):
        d, s, b = random_instance(rng, integer=bool(rng.integers(2)))
        rows = np.arange(len(d))
        ch = dadq.solve(d, s, b, "lagrangian")
        assert s[rows, ch].sum() <= b + 1e-9
        hull_budget = s[rows, ch].sum()  # a Lagrangian point's own size is a hull budget
        ex = dadq.solve(d, s, hull_budget, "exact")
        assert d[rows, ch].sum() == pytest.approx(d[rows, ex].sum(), abs=1e-9)


def test_lagrangian_is_largest_hull_point_under_budget():
    rng = np.random.default_rng(5)
    for _ in range(100):
        d, s, b = random_instance(rng)
        rows = np.arange(len(d))
        start, moves, slopes = hull_path(d, s)
        cur, best = start.copy(), start.copy()
        for k, (i, o) in enumerate(moves):
            cur[i] = o
            boundary = k + 1 == len(moves) or slopes[k + 1] < slopes[k] * (1 - 1e-12)
            if boundary and s[rows, cur].sum() <= b:
                best = cur.copy()
        ch = dadq.solve(d, s, b, "lagrangian")
        assert d[rows, ch].sum() == pytest.approx(d[rows, best].sum(), abs=1e-9)


def test_lagrangian_choice_follows_slope():
    d = np.array([[1.0, 0.5, 0.1]])
    s = np.array([[2.0, 4.0, 8.0]])
    assert dadq.lagrangian_choice(d, s, 10.0)[0] == 0
    assert dadq.lagrangian_choice(d, s, 0.0)[0] == 2
    assert dadq.lagrangian_choice(d, s, 0.15)[0] == 1  # slopes 0.25 then 0.1


@pytest.mark.parametrize("method", ["greedy", "uniform"])
def test_baselines_feasible(method):
    rng = np.random.default_rng(6)
    for _ in range(100):
        d, s, b = random_instance(rng, convex=True)
        s = np.tile(np.sort(rng.integers(1, 9, (1, s.shape[1])), axis=1), (len(d), 1)).astype(float)
        b = rng.uniform(smallest_budget(s), s.max(1).sum())
        try:
            ch = dadq.solve(d, s, b, method)
        except ValueError as e:
            assert method == "uniform" and "smallest uniform" in str(e)
            continue
        assert s[np.arange(len(d)), ch].sum() <= b + 1e-9
        if method == "uniform":
            assert len(set(ch.tolist())) == 1


def test_greedy_never_beats_exact():
    rng = np.random.default_rng(7)
    for _ in range(100):
        d, s, b = random_instance(rng)
        rows = np.arange(len(d))
        g = d[rows, dadq.solve(d, s, b, "greedy")].sum()
        e = d[rows, dadq.solve(d, s, b, "exact")].sum()
        assert e <= g + 1e-12


def test_infeasible_budget_names_smallest():
    d = np.ones((3, 2))
    s = np.array([[2.0, 4.0]] * 3)
    for method in ("exact", "lagrangian", "greedy", "uniform"):
        with pytest.raises(ValueError, match="smallest feasible budget is 6"):
            dadq.solve(d, s, 5.0, method)


def test_bad_shapes_rejected():
    with pytest.raises(ValueError, match="N quantizers, M options"):
        dadq.solve(np.ones((2, 3)), np.ones((3, 2)), 10)
