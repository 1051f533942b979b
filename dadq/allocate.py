"""Bit allocation: the solvers on plain arrays, and ``allocate(profile, ...) -> Allocation``.

One group's problem is a multiple-choice knapsack: N quantizers, each picks one of M options with
distortion D[i, j] and size s[i, j] (bits); minimise sum D subject to sum s <= budget.

- ``lagrangian``: for a slope λ each quantizer picks argmin_j D + λ s. Sweeping λ visits exactly
  the points on the lower convex hull of the summed curve (Shoham-Gersho); a budget maps to the
  largest hull point that fits. Implemented as one sort of all hull-segment slopes, which is the
  limit of bisection on λ, with no tolerance to tune.
- ``exact``: the knapsack solved exactly, by dynamic programming over sizes in units of their
  GCD where that table is small, else by scipy's MILP (HiGHS) with a zero optimality gap.
- ``greedy``: start at the smallest option everywhere, repeatedly take the upgrade with the best
  distortion drop per bit that still fits.
- ``uniform``: the same option column for every quantizer, the largest that fits.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import reduce
from math import gcd
from pathlib import Path

import numpy as np

from .io import write_json
from .quant import FP_BITS

METHODS = ("lagrangian", "exact", "greedy", "uniform")
TARGETS = ("wa", "w", "a")
WEIGHT_MODES = ("per-group", "shared")
DP_MAX_CELLS = 4_000_000  # N x (budget / gcd) cells above which the MILP is used instead


def _check(distortion, size):
    d = np.asarray(distortion, dtype=np.float64)
    s = np.asarray(size, dtype=np.float64)
    if d.ndim != 2 or d.shape != s.shape:
        raise ValueError(f"distortion {d.shape} and size {s.shape} must both be [N quantizers, M options].")
    if not np.isfinite(d).all() or not np.isfinite(s).all() or (s < 0).any():
        raise ValueError("distortion and size must be finite, and sizes non-negative.")
    return d, s


def smallest_budget(size) -> float:
    """The smallest feasible budget: every quantizer at its smallest option."""
    return float(np.asarray(size, dtype=np.float64).min(axis=1).sum())


def _feasible(s: np.ndarray, budget: float) -> None:
    lo = smallest_budget(s)
    if budget < lo * (1 - 1e-12):
        raise ValueError(f"budget {budget:.6g} is infeasible: the smallest feasible budget is {lo:.6g} "
                         "(every quantizer at its smallest option). Raise the budget.")


def lagrangian_choice(distortion, size, lam: float) -> np.ndarray:
    """argmin_j D[i, j] + lam * s[i, j] per row, ties to the smaller size: int [N]."""
    d, s = _check(distortion, size)
    cost = d + lam * s
    best = cost.min(axis=1, keepdims=True)
    # among (near-)ties keep the smallest size, so lam -> the same point from both sides
    tie = cost <= best + 1e-12 * np.maximum(1.0, np.abs(best))
    return np.where(tie, s, np.inf).argmin(axis=1)


def hull_path(distortion, size):
    """The Lagrangian sweep from λ = ∞ down to 0.

    Returns (start [N] int, moves [K, 2] int (quantizer, new option), slopes [K] float): start at
    ``start`` (the smallest-size option of each row), then apply moves in order; slopes are
    non-increasing, and every prefix that ends between two different slopes is a Lagrangian point.
    """
    d, s = _check(distortion, size)
    n = d.shape[0]
    start = np.empty(n, dtype=np.int64)
    rows, opts, slopes = [], [], []
    for i in range(n):
        order = np.lexsort((d[i], s[i]))  # by size, then distortion
        cur = order[0]
        start[i] = cur
        while True:
            cand = order[(s[i, order] > s[i, cur]) & (d[i, order] < d[i, cur])]
            if cand.size == 0:
                break
            sl = (d[i, cur] - d[i, cand]) / (s[i, cand] - s[i, cur])
            k = np.flatnonzero(sl >= sl.max() * (1 - 1e-12))
            nxt = cand[k[np.argmax(s[i, cand[k]])]]  # steepest; among equal slopes jump to the far end
            rows.append(i)
            opts.append(nxt)
            slopes.append(sl.max())
            cur = nxt
    slopes = np.asarray(slopes, dtype=np.float64)
    order = np.argsort(-slopes, kind="stable")  # within a row slopes already fall, so stable keeps row order
    moves = np.stack([np.asarray(rows, dtype=np.int64)[order], np.asarray(opts, dtype=np.int64)[order]], 1) \
        if rows else np.zeros((0, 2), dtype=np.int64)
    return start, moves, slopes[order]


def _fitting_slope(d, s, budget) -> float:
    """The smallest λ whose Lagrangian point fits the budget (the dual optimum).

    Every Lagrangian point is optimal on an interval of λ that starts at one of the pairwise slopes
    within a row, so binary search over those candidates: O(N M^2 log) with a vectorised argmin per
    probe. When no candidate fits, only the smallest options do: a λ above every slope is returned.
    """
    dd = d[:, :, None] - d[:, None, :]
    ds = s[:, None, :] - s[:, :, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        cand = np.where((ds > 0) & (dd > 0), dd / ds, np.nan)
    lams = np.unique(np.concatenate([[0.0], cand[np.isfinite(cand)]]))
    rows = np.arange(len(d))

    def fits(k):
        return s[rows, lagrangian_choice(d, s, lams[k])].sum() <= budget

    lo, hi = 0, len(lams) - 1
    if not fits(hi):
        return float(lams[-1] * 2 + 1.0)
    while lo < hi:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid + 1
    return float(lams[lo])


def _lagrangian(d, s, budget):
    return lagrangian_choice(d, s, _fitting_slope(d, s, budget))


def _dp(d, s, budget, keep=None, max_cells: int = DP_MAX_CELLS):
    """Exact DP over the kept options (integer sizes); None when the table would exceed max_cells.

    The table runs over the size *above each row's smallest kept option*, in units of the GCD of
    those offsets: after reduced-cost fixing few options remain, so the capacity left is small.
    """
    n, _ = d.shape
    keep = np.ones(d.shape, dtype=bool) if keep is None else keep
    smin = np.where(keep, s, np.inf).min(axis=1)
    off = np.rint(np.where(keep, s - smin[:, None], 0)).astype(np.int64)
    unit = reduce(gcd, [int(v) for v in off[keep] if v] or [1])
    units = off // unit
    cap = int(np.floor((budget - smin.sum()) / unit + 1e-9))
    if cap < 0 or n * (cap + 1) > max_cells:
        return None
    best = np.zeros(cap + 1)  # best[c]: min distortion of the rows so far within c units above their minima
    arg = np.zeros((n, cap + 1), dtype=np.int16)
    for i in range(n):
        new = np.full(cap + 1, np.inf)
        for j in np.flatnonzero(keep[i]):
            u = units[i, j]
            if u > cap:
                continue
            cand = np.full(cap + 1, np.inf)
            cand[u:] = best[:cap + 1 - u] + d[i, j]
            better = cand < new
            new[better] = cand[better]
            arg[i, better] = j
        best = new
    choice = np.empty(n, dtype=np.int64)
    c = cap
    for i in range(n - 1, -1, -1):
        j = int(arg[i, c])
        choice[i] = j
        c -= units[i, j]
    return choice


def _reduced_cost_keep(d, s, budget):
    """Options that can be part of an optimal solution (exact fixing, not a heuristic).

    With λ* the dual optimum, LB = sum_i min_j (D_ij + λ* s_ij) − λ* budget bounds the optimum from
    below and UB (best of greedy and Lagrangian) from above. Every optimal solution has total reduced
    cost sum_i [D_i + λ* s_i − min_j (D_ij + λ* s_ij)] ≤ UB − LB, so an option whose own reduced cost
    exceeds UB − LB is never chosen.
    """
    rows = np.arange(len(d))
    lam = _fitting_slope(d, s, budget)
    cost = d + lam * s
    lb = cost.min(axis=1).sum() - lam * budget
    ub = d[rows, _greedy(d, s, budget)].sum()
    lag = lagrangian_choice(d, s, lam)
    if s[rows, lag].sum() <= budget:
        ub = min(ub, d[rows, lag].sum())
    red = cost - cost.min(axis=1, keepdims=True)
    # generous float slack: keeping an extra option costs time, never correctness
    slack = 1e-9 * (np.abs(cost).sum() + abs(lam * budget)) + 1e-300
    return red <= (ub - lb) + slack


def _milp(d, s, budget):
    from scipy.optimize import Bounds, LinearConstraint, milp

    n, m = d.shape
    # constant offsets leave the argmin unchanged and help HiGHS with tiny distortions
    scale = 1.0 / max(np.abs(d).max(), 1e-300)
    c = (d * scale).ravel()
    one_each = np.kron(np.eye(n), np.ones(m))
    cons = [LinearConstraint(one_each, 1, 1), LinearConstraint(s.ravel()[None, :], -np.inf, budget)]
    res = milp(c, constraints=cons, integrality=np.ones(n * m), bounds=Bounds(0, 1),
               options={"mip_rel_gap": 0.0, "time_limit": 60.0})
    if res.x is None:
        raise ValueError(f"the exact solver found no solution ({res.message}); try method='lagrangian'.")
    return res.x.reshape(n, m).argmax(axis=1)


def _exact(d, s, budget):
    # Reduced-cost fixing shrinks the DP table by orders of magnitude on real profiles (timings in
    # benchmarks/results/solver_speed.json); the plain DP and then HiGHS's MILP are the fall-backs.
    if np.allclose(s, np.rint(s)) and s.max() > 0:
        for keep in (_reduced_cost_keep(d, s, budget), None):
            choice = _dp(d, s, budget, keep)
            if choice is not None:
                return choice
    return _milp(d, s, budget)


def _greedy(d, s, budget):
    n = d.shape[0]
    rows = np.arange(n)
    choice = np.lexsort((d, s), axis=1)[:, 0] if False else np.array([np.lexsort((d[i], s[i]))[0] for i in rows])
    total = float(s[rows, choice].sum())
    while True:
        ds = s - s[rows, choice][:, None]
        dd = d[rows, choice][:, None] - d
        ok = (ds > 0) & (dd > 0) & (ds <= budget - total + 1e-9 * max(budget, 1.0))
        if not ok.any():
            return choice
        ratio = np.where(ok, dd / np.where(ds > 0, ds, 1.0), -np.inf)
        i, j = np.unravel_index(np.argmax(ratio), ratio.shape)
        total += float(ds[i, j])
        choice[i] = j


def _uniform(d, s, budget):
    totals = s.sum(axis=0)
    fits = np.flatnonzero(totals <= budget * (1 + 1e-12))
    if fits.size == 0:
        raise ValueError(f"no single option fits every quantizer within budget {budget:.6g}: the smallest uniform "
                         f"total is {totals.min():.6g}. Raise the budget, or use another method.")
    j = fits[np.argmin(d[:, fits].sum(axis=0))]  # among the columns that fit, the least distortion
    return np.full(d.shape[0], j, dtype=np.int64)


def solve(distortion, size, budget: float, method: str = "exact") -> np.ndarray:
    """Choose one option per quantizer.

    distortion, size: float [N quantizers, M options] (size in any unit, e.g. bits).
    budget: the same unit as size. Returns int [N] option indices with total size <= budget:
    minimal total distortion for 'exact'; the Lagrangian point of the largest convex-hull budget
    <= budget for 'lagrangian'; baselines for 'greedy' and 'uniform'.
    Raises ValueError, naming the smallest feasible budget, when none fits.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r}: choose one of {METHODS}.")
    d, s = _check(distortion, size)
    budget = float(budget)
    _feasible(s, budget)
    return {"lagrangian": _lagrangian, "exact": _exact, "greedy": _greedy, "uniform": _uniform}[method](d, s, budget)


# --- allocation over a Profile ---------------------------------------------------------------

@dataclass
class Allocation:
    """Bits per (group, layer) for weights and activations, with sizes and predicted distortion.

    w_bits, a_bits: int [G, L] (FP_BITS = 32 means full precision, float32).
    Sizes are in bits unless named otherwise:
      group_bits [G]        W + A size that one denoising step in group g uses
      group_avg_bits [G]    that size per element of the target (average bits per element)
      stored_weight_bits    weights as stored: shared mode one copy, per-group mode every distinct copy
    predicted [G]: sum of the profiled per-quantizer distortions (additivity assumption).
    """

    layer_names: list[str]
    w_bits: np.ndarray
    a_bits: np.ndarray
    predicted: np.ndarray
    group_bits: np.ndarray
    group_avg_bits: np.ndarray
    stored_weight_bits: float
    fp_weight_bits: float
    method: str
    target: str
    weight_mode: str
    budget: float | tuple | None
    lam: float | None
    fingerprint: str
    notes: list[str] = field(default_factory=list)

    @property
    def bits(self) -> np.ndarray:
        """int [G, L, 2]: [..., 0] weights, [..., 1] activations."""
        return np.stack([self.w_bits, self.a_bits], axis=-1)

    @property
    def stored_weight_bytes(self) -> float:
        return self.stored_weight_bits / 8

    @property
    def compression(self) -> float:
        """FP32 weight size / stored weight size."""
        return self.fp_weight_bits / max(self.stored_weight_bits, 1.0)

    def check_profile(self, profile) -> None:
        if self.fingerprint != profile.fingerprint or self.layer_names != profile.layer_names:
            raise ValueError("this allocation belongs to another profile/model (fingerprint "
                             f"{self.fingerprint} vs {profile.fingerprint}); allocate again from this profile.")

    def summary(self) -> dict:
        return {
            "method": self.method, "target": self.target, "weight_mode": self.weight_mode,
            "budget": self.budget, "lam": self.lam,
            "mean_group_avg_bits": float(np.mean(self.group_avg_bits)),
            "stored_weight_MB": self.stored_weight_bits / 8e6, "fp32_weight_MB": self.fp_weight_bits / 8e6,
            "compression_x": self.compression, "predicted_distortion_mean": float(np.mean(self.predicted)),
        }

    def to_dict(self) -> dict:
        return {
            "format": "dadq-allocation/1", "layer_names": self.layer_names,
            "w_bits": self.w_bits.tolist(), "a_bits": self.a_bits.tolist(),
            "predicted": self.predicted.tolist(), "group_bits": self.group_bits.tolist(),
            "group_avg_bits": self.group_avg_bits.tolist(), "stored_weight_bits": self.stored_weight_bits,
            "fp_weight_bits": self.fp_weight_bits, "method": self.method, "target": self.target,
            "weight_mode": self.weight_mode, "budget": self.budget, "lam": self.lam,
            "fingerprint": self.fingerprint, "notes": self.notes, "summary": self.summary(),
        }

    def save(self, path: str | Path) -> Path:
        write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def from_dict(cls, obj: dict) -> "Allocation":
        try:
            if obj.get("format") != "dadq-allocation/1":
                raise KeyError("format")
            budget = obj["budget"]
            return cls(
                layer_names=list(obj["layer_names"]), w_bits=np.asarray(obj["w_bits"], dtype=np.int64),
                a_bits=np.asarray(obj["a_bits"], dtype=np.int64), predicted=np.asarray(obj["predicted"], float),
                group_bits=np.asarray(obj["group_bits"], float), group_avg_bits=np.asarray(obj["group_avg_bits"], float),
                stored_weight_bits=float(obj["stored_weight_bits"]), fp_weight_bits=float(obj["fp_weight_bits"]),
                method=obj["method"], target=obj["target"], weight_mode=obj["weight_mode"],
                budget=tuple(budget) if isinstance(budget, list) else budget, lam=obj["lam"],
                fingerprint=obj["fingerprint"], notes=list(obj.get("notes", [])),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a dadq allocation (missing or bad field {e}); export one with "
                             "Allocation.save or `python -m dadq allocate --out`.") from None

    @classmethod
    def load(cls, path: str | Path) -> "Allocation":
        try:
            obj = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ValueError(f"no allocation file at {path}.") from None
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not valid JSON ({e}); it is corrupt or truncated.") from None
        return cls.from_dict(obj)


def _target_numel(profile, target: str) -> float:
    w, a = float(profile.w_numel.sum()), float(profile.a_numel.sum())
    return {"wa": w + a, "w": w, "a": a}[target]


def allocate(profile, budget: float | tuple | None = None, lam: float | None = None, target: str = "wa",
             method: str = "lagrangian", weight_mode: str = "per-group", w_budget: float | None = None,
             a_budget: float | None = None) -> Allocation:
    """Bit allocation per timestep group from a Profile.

    budget: average bits per element of the target (all W and A elements for 'wa', W for 'w',
      A for 'a'), per group; or a pair (w_avg, a_avg) / ``w_budget`` + ``a_budget`` for separate
      W and A budgets. lam: instead of a budget, the slope λ in distortion per average bit
      (always the Lagrangian point). target: 'wa' | 'w' (A stays FP) | 'a' (W stays FP).
    weight_mode: 'per-group' (the paper: weights may differ per group; stored size counts every
      distinct copy) or 'shared' (one weight allocation minimising the sum over groups; the
      budget then bounds the mean over groups).
    """
    if target not in TARGETS:
        raise ValueError(f"target={target!r}: choose 'wa' (joint), 'w' (weights only) or 'a' (activations only).")
    if weight_mode not in WEIGHT_MODES:
        raise ValueError(f"weight_mode={weight_mode!r}: choose 'per-group' or 'shared'.")
    if method not in METHODS:
        raise ValueError(f"method={method!r}: choose one of {METHODS}.")
    if isinstance(budget, (tuple, list)):
        w_budget, a_budget = budget
        budget = None
    separate = w_budget is not None or a_budget is not None
    if separate and (w_budget is None or a_budget is None):
        raise ValueError("separate budgets need both w_budget and a_budget (average bits each).")
    if separate and target != "wa":
        raise ValueError("separate W and A budgets apply to target 'wa'.")
    if sum(x is not None for x in (budget, lam)) + separate != 1:
        raise ValueError("give exactly one of budget (average bits), (w_budget, a_budget), or lam (slope).")

    G, L, bits = profile.num_groups, profile.num_layers, profile.bits
    w_idx = np.full((G, L), -1, dtype=np.int64)  # -1: full precision
    a_idx = np.full((G, L), -1, dtype=np.int64)
    sw, sa = profile.sizes("w"), profile.sizes("a")
    notes = []

    def run(d, s, b_avg, numel):
        """One knapsack (rows of d/s); budget in average bits over ``numel`` elements."""
        if lam is not None:
            return lagrangian_choice(d, s / numel, lam)
        try:
            return solve(d, s, b_avg * numel, method)
        except ValueError as e:
            if "infeasible" in str(e):
                lo = smallest_budget(s) / numel
                raise ValueError(f"budget {b_avg:g} average bits is infeasible: the smallest feasible budget "
                                 f"is {lo:.4g} average bits (every quantizer at {bits.min()} bits).") from None
            raise

    parts = []  # (kind, budget) knapsacks to solve
    if separate:
        parts = [("w", w_budget), ("a", a_budget)]
    elif target == "wa":
        parts = [("wa", budget)]
    else:
        parts = [(target, budget)]
    for kind, b_avg in parts:
        kinds = ["w", "a"] if kind == "wa" else [kind]
        numel = sum(float((profile.w_numel if k == "w" else profile.a_numel).sum()) for k in kinds)
        if weight_mode == "per-group" or "w" not in kinds:
            for g in range(G):
                d = np.concatenate([profile.curves(k)[g] for k in kinds])
                s = np.concatenate([sw if k == "w" else sa for k in kinds])
                ch = run(d, s, b_avg, numel)
                for ki, k in enumerate(kinds):
                    (w_idx if k == "w" else a_idx)[g] = ch[ki * L:(ki + 1) * L]
        else:
            # shared weights: one knapsack over L weight rows (D summed over groups, size x G) and
            # G*L activation rows; the budget bounds the total over groups, i.e. the mean per group.
            d = [profile.d_w.sum(axis=0)]
            s = [sw * G]
            if "a" in kinds:
                d += [profile.d_a[g] for g in range(G)]
                s += [sa] * G
            ch = run(np.concatenate(d), np.concatenate(s), b_avg, numel * G)
            w_idx[:] = ch[:L][None, :]
            if "a" in kinds:
                a_idx[:] = ch[L:].reshape(G, L)
            notes.append("shared weights: the budget bounds the mean over groups of the per-step W+A size")

    def to_bits(idx):
        return np.where(idx >= 0, bits[np.maximum(idx, 0)], FP_BITS)

    w_bits, a_bits = to_bits(w_idx), to_bits(a_idx)
    g_ar = np.arange(G)[:, None]
    l_ar = np.arange(L)[None, :]
    pred = (np.where(w_idx >= 0, profile.d_w[g_ar, l_ar, np.maximum(w_idx, 0)], 0.0).sum(1)
            + np.where(a_idx >= 0, profile.d_a[g_ar, l_ar, np.maximum(a_idx, 0)], 0.0).sum(1))
    wb = (w_bits * profile.w_numel[None, :]).sum(1).astype(float)
    ab = (a_bits * profile.a_numel[None, :]).sum(1).astype(float)
    group_bits = {"wa": wb + ab, "w": wb, "a": ab}[target]
    group_avg = group_bits / _target_numel(profile, target)
    # storage: every distinct weight copy of a layer must be held
    stored = float(sum(profile.w_numel[l] * np.unique(w_bits[:, l]).sum() for l in range(L)))
    return Allocation(
        layer_names=list(profile.layer_names), w_bits=w_bits, a_bits=a_bits, predicted=pred,
        group_bits=group_bits, group_avg_bits=group_avg, stored_weight_bits=stored,
        fp_weight_bits=float(profile.w_numel.sum() * FP_BITS), method="lagrangian" if lam is not None else method,
        target=target, weight_mode=weight_mode,
        budget=(w_budget, a_budget) if separate else budget, lam=lam, fingerprint=profile.fingerprint, notes=notes,
    )


def rd_sweep(profile, target: str = "wa", g: int | None = None, num: int | None = None):
    """The Lagrangian trade-off of the whole model: (avg_bits [K], distortion [K]) hull points from
    the smallest to the largest size, summed over groups (or for group g), per-group weights."""
    kinds = ["w", "a"] if target == "wa" else [target]
    groups = range(profile.num_groups) if g is None else [g]
    d = np.concatenate([profile.curves(k)[gg] for gg in groups for k in kinds])
    s = np.concatenate([profile.sizes(k) for _ in groups for k in kinds])
    start, moves, _ = hull_path(d, s)
    rows = np.arange(len(d))
    size = [float(s[rows, start].sum())]
    dist = [float(d[rows, start].sum())]
    cur = start.copy()
    for i, o in moves:
        size.append(size[-1] + s[i, o] - s[i, cur[i]])
        dist.append(dist[-1] + d[i, o] - d[i, cur[i]])
        cur[i] = o
    numel = _target_numel(profile, target) * len(groups)
    return np.asarray(size) / numel, np.asarray(dist) / len(groups)
