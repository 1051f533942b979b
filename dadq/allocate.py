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
import math
from dataclasses import dataclass, field
from functools import reduce
from math import gcd
from pathlib import Path

import numpy as np

from .bitwidths import FP_BITS, option_index
from .groups import TimestepGroups
from .rounding import per_group_hessian
from .io import write_json

METHODS = ("lagrangian", "exact", "greedy", "uniform")
TARGETS = ("wa", "w", "a")  # joint W+A, weights only (A stays FP), activations only (W stays FP)
WEIGHT_MODES = ("per-group", "shared")
BUDGET_SCOPES = ("group", "mean")  # every group meets the budget / the mean over groups does
# how an allocation's notes start when group_weights changed its solve (the app names such runs by it)
GROUP_WEIGHTED_NOTE = "group_weights: group D weighted"
# N x (budget / gcd) cells above which the MILP is used instead. The DP is exact and its back-pointer
# table is int16 (64 MB at the limit); the MILP stops at HiGHS's absolute gap, which is coarse on sums
# of small distortions, so pooled knapsacks (budget_scope="mean") must stay within the DP.
DP_MAX_CELLS = 32_000_000


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


def _dp(d, s, budget, keep=None, max_cells: int | None = None):
    """Exact DP over the kept options (integer sizes); None when the table would exceed max_cells
    (default DP_MAX_CELLS).

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
    if cap < 0 or n * (cap + 1) > (DP_MAX_CELLS if max_cells is None else max_cells):
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
        keep = _reduced_cost_keep(d, s, budget)
        for k in (keep, None):
            choice = _dp(d, s, budget, k)
            if choice is not None:
                return choice
        # Pooled knapsacks (all groups in one) have ten times the rows: a DP over only the rows that
        # kept more than one option fits where the whole table does not. HiGHS's MILP stops at an
        # absolute gap of 1e-6, which is not exact on such sums of small distortions.
        choice = _dp_free_rows(d, s, budget, keep)
        if choice is not None:
            return choice
    # Not proven optimal: never return worse than the heuristics, which also fit the budget.
    rows = np.arange(len(d))
    return min((_milp(d, s, budget), _greedy(d, s, budget), _lagrangian(d, s, budget)),
               key=lambda c: d[rows, c].sum())


def _dp_free_rows(d, s, budget, keep):
    """The exact DP over the rows with more than one kept option; the others take their one option."""
    free = keep.sum(axis=1) > 1
    choice = np.where(keep, s, np.inf).argmin(axis=1)
    fixed = float(s[~free, choice[~free]].sum())
    sub = _dp(d[free], s[free], budget - fixed, keep[free])
    if sub is None:
        return None
    choice[free] = sub
    return choice


def _greedy(d, s, budget):
    n = d.shape[0]
    rows = np.arange(n)
    choice = np.array([np.lexsort((d[i], s[i]))[0] for i in rows])  # the smallest option, least D among equals
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

ALLOCATION_FORMAT = "dadq-allocation/2"
OLD_ALLOCATION_FORMAT = "dadq-allocation/1"  # bits and sizes only: it needs its profile to quantize


def target_numel(numels, target: str) -> float:
    """Elements the target covers in one denoising step: W, A (one sample's layer inputs) or both.

    numels: anything with ``w_numel`` and ``a_numel`` int [L] (a Profile or an Allocation)."""
    w, a = float(numels.w_numel.sum()), float(numels.a_numel.sum())
    return {"wa": w + a, "w": w, "a": a}[target]


def chosen_distortion(curves: np.ndarray, options, bits: np.ndarray) -> np.ndarray:
    """D [G, L] of each chosen option: curves [G, L, M] over the widths ``options`` [M], read at
    bits [G, L]; 0 where full precision (nothing quantized, nothing lost)."""
    idx = option_index(options, bits)
    g = np.arange(bits.shape[0])[:, None]
    l = np.arange(bits.shape[1])[None, :]
    return np.where(idx >= 0, curves[g, l, np.maximum(idx, 0)], 0.0)


@dataclass
class Allocation:
    """Bits per (group, layer) for weights and activations, with everything quantizing needs.

    Shapes: G groups, L layers (the profile's execution order), M candidate bit widths.
      w_bits, a_bits   int [G, L]      bits (FP_BITS = 32: full precision, float32)
      d_w, d_a         float [G, L]    the profile's D at each chosen width (0 at FP)
      w_numel, a_numel int [L]         weight elements; one sample's input elements
      act_range        float [G, L, 2] activation (lo, hi) at each chosen width (FP: calibration min/max)
      a_split          int [L]         channel where a layer's concatenated input splits (0: one range)
      act_range_parts  float [G, L, 2, 2]  (lo, hi) of each part of a split input (zeros elsewhere and at FP)
      bit_options      int [M]         the profile's candidate widths
      a_overhead       float [L]       bits per sample a quantized input stores beside its values (per-token
                                       ranges, ``Profile.a_overhead_bits``); None: 0 (per-tensor ranges)
    The profile facts it depends on (fingerprint, layer names, T, widths, ``settings``: rounding,
    bias correction, metric) are recorded, so ``check`` can refuse a model or profile made otherwise.
    budget: average bits per element of the target, or (w, a) for separate budgets; budget_scope:
    'group' (every group meets it) or 'mean' (the mean over groups does).
    Sizes (properties) are in bits unless named otherwise.
    """

    layer_names: list[str]
    w_bits: np.ndarray
    a_bits: np.ndarray
    d_w: np.ndarray
    d_a: np.ndarray
    w_numel: np.ndarray
    a_numel: np.ndarray
    act_range: np.ndarray
    a_split: np.ndarray
    act_range_parts: np.ndarray
    bit_options: np.ndarray
    num_timesteps: int
    fingerprint: str
    settings: dict
    method: str
    target: str
    weight_mode: str
    budget_scope: str
    budget: float | tuple | None
    lam: float | None
    notes: list[str] = field(default_factory=list)
    a_overhead: np.ndarray | None = None

    # --- derived ----------------------------------------------------------------------------
    @property
    def num_groups(self) -> int:
        return int(self.w_bits.shape[0])

    @property
    def groups(self) -> TimestepGroups:
        return TimestepGroups(self.num_timesteps, self.num_groups)

    def split_layers(self) -> dict[str, int]:
        """{layer: split channel} of the layers whose input takes one range per concatenated part."""
        return {n: int(c) for n, c in zip(self.layer_names, self.a_split) if c > 0}

    @property
    def predicted(self) -> np.ndarray:
        """float [G]: the sum of the profiled per-quantizer distortions (additivity assumption)."""
        return self.d_w.sum(1) + self.d_a.sum(1)

    def step_bits(self) -> tuple[np.ndarray, np.ndarray]:
        """(weights, activations): float [G] bits that one denoising step in group g reads / quantizes,
        activations with their per-token range parameters (the size the solver spent)."""
        wb = (self.w_bits * self.w_numel[None, :]).sum(1).astype(float)
        ab = (self.a_bits * self.a_numel[None, :]).sum(1).astype(float)
        if self.a_overhead is not None:
            ab = ab + ((self.a_bits < FP_BITS) * self.a_overhead[None, :]).sum(1)
        return wb, ab

    @property
    def group_bits(self) -> np.ndarray:
        """float [G]: the target's size (bits) that one denoising step in group g uses."""
        wb, ab = self.step_bits()
        return {"wa": wb + ab, "w": wb, "a": ab}[self.target]

    @property
    def group_avg_bits(self) -> np.ndarray:
        """float [G]: group_bits per element of the target (average bits per element)."""
        return self.group_bits / target_numel(self, self.target)

    @property
    def stored_weight_bits(self) -> float:
        """Weights as stored, bits: every distinct bit width of a layer is one copy (shared mode: one); with
        per-group Hessians (``rounding.per_group_hessian``) every quantized group holds its own copy."""
        own = per_group_hessian(self.settings.get("rounding", "rtn"))
        total = 0.0
        for numel, col in zip(self.w_numel, self.w_bits.T):
            fp = col == FP_BITS  # the FP weight is one copy however many groups use it
            total += numel * (col[~fp].sum() + FP_BITS * fp.any() if own else np.unique(col).sum())
        return float(total)

    @property
    def fp_weight_bits(self) -> float:
        return float(self.w_numel.sum() * FP_BITS)

    @property
    def compression(self) -> float:
        """FP32 weight size / stored weight size."""
        return self.fp_weight_bits / max(self.stored_weight_bits, 1.0)

    def sizes(self) -> dict:
        """Sizes in MB (10^6 bytes), each with its meaning.

        step_w_MB / step_a_MB: weights read / activations (one sample's layer inputs) quantized in one
        denoising step, mean over groups; fp32_w_MB / fp32_a_MB the same at FP32; stored_w_MB: weights
        as stored (every distinct copy per layer); compression_x: fp32 weights / stored weights;
        avg_bits: mean over groups of the per-step average bits per target element."""
        wb, ab = self.step_bits()
        return {
            "step_w_MB": float(wb.mean()) / 8e6, "step_a_MB": float(ab.mean()) / 8e6,
            "fp32_w_MB": float(self.w_numel.sum()) * FP_BITS / 8e6,
            "fp32_a_MB": float(self.a_numel.sum()) * FP_BITS / 8e6,
            "stored_w_MB": self.stored_weight_bits / 8e6, "compression_x": self.compression,
            "avg_bits": float(np.mean(self.group_avg_bits)),
        }

    def distortion_on(self, profile) -> np.ndarray:
        """float [G]: the summed D of this allocation's choices on ``profile``'s curves (e.g. exact
        curves scoring an allocation made on fast-mode curves of the same model)."""
        return (chosen_distortion(profile.d_w, profile.bits, self.w_bits).sum(1)
                + chosen_distortion(profile.d_a, profile.bits, self.a_bits).sum(1))

    def summary(self) -> dict:
        return {
            "method": self.method, "target": self.target, "weight_mode": self.weight_mode,
            "budget_scope": self.budget_scope, "budget": self.budget, "lam": self.lam,
            "mean_group_avg_bits": float(np.mean(self.group_avg_bits)),
            "stored_weight_MB": self.stored_weight_bits / 8e6, "fp32_weight_MB": self.fp_weight_bits / 8e6,
            "compression_x": self.compression, "predicted_distortion_mean": float(np.mean(self.predicted)),
        }

    def to_frame(self):
        """A tidy pandas DataFrame, one row per (kind, group, layer): layer, kind ('w'/'a'), group,
        bits (chosen; 32 = FP), D (the profile's D at that width; 0 at FP), size_bits (numel x bits)."""
        import pandas as pd

        G, L = self.w_bits.shape
        parts = []
        for kind, bits, d, numel in (("w", self.w_bits, self.d_w, self.w_numel),
                                     ("a", self.a_bits, self.d_a, self.a_numel)):
            parts.append(pd.DataFrame({
                "layer": np.tile(np.asarray(self.layer_names, dtype=object), G), "kind": kind,
                "group": np.repeat(np.arange(G), L), "bits": bits.ravel().astype(np.int64),
                "D": d.ravel().astype(float), "size_bits": (bits * numel[None, :]).ravel().astype(np.int64),
            }))
        return pd.concat(parts, ignore_index=True)

    def breakdown(self):
        """Where the predicted distortion goes: ``to_frame`` (one row per quantizer: layer, kind
        'w'/'a', group, bits, D) with ``share``, each row's fraction of its group's total D, and
        ``share_of_mean``, its fraction of the mean over groups of the total (D / G / mean total, so a
        quantizer's ``share_of_mean`` summed over groups is its share of the mean D). Largest D first."""
        frame = self.to_frame().drop(columns="size_bits")
        G = self.w_bits.shape[0]
        total = frame.groupby("group")["D"].transform("sum")
        frame["share"] = (frame["D"] / total.where(total > 0, 1.0)).astype(float)
        mean_total = float(frame["D"].sum()) / G
        frame["share_of_mean"] = frame["D"] / G / (mean_total if mean_total > 0 else 1.0)
        return frame.sort_values(["D", "group"], ascending=[False, True], kind="stable").reset_index(drop=True)

    # --- validation ---------------------------------------------------------------------------
    def check(self, model=None, profile=None) -> None:
        """Raise ValueError (one message per problem, naming the fix) unless the arrays are whole and
        consistent, and the allocation belongs to ``model`` / ``profile`` where given."""
        if profile is not None and (self.fingerprint != profile.fingerprint
                                    or self.layer_names != list(profile.layer_names)):
            raise ValueError("this allocation belongs to another profile/model (fingerprint "
                             f"{self.fingerprint} vs {profile.fingerprint}); allocate again from this profile.")
        if model is not None and self.fingerprint != model.fingerprint():
            raise ValueError(f"this allocation belongs to another model (fingerprint {self.fingerprint}, model "
                             f"{model.fingerprint()} from {model.source}); allocate from this model's profile.")
        for name, choices in (("method", METHODS), ("target", TARGETS), ("weight_mode", WEIGHT_MODES),
                              ("budget_scope", BUDGET_SCOPES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"this allocation's {name}={getattr(self, name)!r} is none of {choices}; "
                                 "allocate again from the profile.")
        L = len(self.layer_names)
        G = profile.num_groups if profile is not None else (self.w_bits.shape[0] if self.w_bits.ndim == 2 else 0)
        for name, shape in (("w_bits", (G, L)), ("a_bits", (G, L)), ("d_w", (G, L)), ("d_a", (G, L)),
                            ("act_range", (G, L, 2)), ("act_range_parts", (G, L, 2, 2)), ("a_split", (L,)),
                            ("w_numel", (L,)), ("a_numel", (L,))):
            arr = getattr(self, name)
            if G < 1 or tuple(arr.shape) != shape:
                raise ValueError(f"this allocation's {name} has shape {tuple(arr.shape)}; {G} groups x {L} layers "
                                 f"need {shape}. Allocate again from the profile.")
        allowed = set(int(b) for b in self.bit_options) | {FP_BITS}
        for name in ("w_bits", "a_bits"):
            bad = set(int(b) for b in getattr(self, name).ravel()) - allowed
            if bad:
                raise ValueError(f"this allocation's {name} uses bits {sorted(bad)} that its profile does not hold "
                                 f"({sorted(allowed - {FP_BITS})} or {FP_BITS} = FP); allocate again from the profile.")
        if not all(np.isfinite(a).all() for a in (self.d_w, self.d_a, self.act_range, self.act_range_parts)):
            raise ValueError("this allocation holds non-finite distortions or ranges; allocate again from the profile.")
        if profile is not None:
            ours = (self.num_timesteps, [int(b) for b in self.bit_options], self.settings, self.split_layers())
            theirs = (profile.num_timesteps, [int(b) for b in profile.bits], profile.settings(), profile.split_layers())
            if ours != theirs:
                raise ValueError(f"this allocation was made from a profile with (T, bit widths, settings, split inputs) "
                                 f"{ours}; this profile has {theirs}. Allocate again from this profile.")

    # --- persistence: JSON, no pickle -------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "format": ALLOCATION_FORMAT, "fingerprint": self.fingerprint, "layer_names": self.layer_names,
            "num_timesteps": self.num_timesteps, "bit_options": self.bit_options.tolist(), "settings": self.settings,
            "method": self.method, "target": self.target, "weight_mode": self.weight_mode,
            "budget_scope": self.budget_scope, "budget": self.budget, "lam": self.lam, "notes": self.notes,
            "w_bits": self.w_bits.tolist(), "a_bits": self.a_bits.tolist(), "d_w": self.d_w.tolist(),
            "d_a": self.d_a.tolist(), "w_numel": self.w_numel.tolist(), "a_numel": self.a_numel.tolist(),
            "act_range": self.act_range.tolist(), "a_split": self.a_split.tolist(),
            "act_range_parts": self.act_range_parts.tolist(),
            **({"a_overhead": self.a_overhead.tolist()} if self.a_overhead is not None else {}),
            # derived, for readers of the file; recomputed on load
            "predicted": self.predicted.tolist(), "group_bits": self.group_bits.tolist(),
            "group_avg_bits": self.group_avg_bits.tolist(), "stored_weight_bits": self.stored_weight_bits,
            "fp_weight_bits": self.fp_weight_bits, "summary": self.summary(),
        }

    def save(self, path: str | Path) -> Path:
        write_json(path, self.to_dict())
        return Path(path)

    @classmethod
    def from_dict(cls, obj: dict, profile=None) -> "Allocation":
        """Read either format; the old one (no activation ranges) only with the ``profile`` it was
        made from, whose facts then fill it in. The result is checked (and against ``profile``)."""
        fmt = obj.get("format") if isinstance(obj, dict) else None
        if fmt == OLD_ALLOCATION_FORMAT and profile is None:
            raise ValueError(f"this allocation has the old format {OLD_ALLOCATION_FORMAT}, which holds no activation "
                             "ranges: load it with its profile (Allocation.load(path, profile=...)), or allocate again "
                             "from the profile.")
        try:
            if fmt not in (ALLOCATION_FORMAT, OLD_ALLOCATION_FORMAT):
                raise KeyError("format")
            budget = obj["budget"]
            w_bits = np.asarray(obj["w_bits"], dtype=np.int64)
            a_bits = np.asarray(obj["a_bits"], dtype=np.int64)
            common = dict(
                layer_names=list(obj["layer_names"]), w_bits=w_bits, a_bits=a_bits, method=obj["method"],
                target=obj["target"], weight_mode=obj["weight_mode"], fingerprint=obj["fingerprint"],
                budget=tuple(budget) if isinstance(budget, list) else budget, lam=obj["lam"],
                notes=list(obj.get("notes", [])))
            if fmt == ALLOCATION_FORMAT:
                alloc = cls(**common, d_w=np.asarray(obj["d_w"], float), d_a=np.asarray(obj["d_a"], float),
                            w_numel=np.asarray(obj["w_numel"], dtype=np.int64),
                            a_numel=np.asarray(obj["a_numel"], dtype=np.int64),
                            act_range=np.asarray(obj["act_range"], float),
                            a_split=np.asarray(obj["a_split"], dtype=np.int64),
                            act_range_parts=np.asarray(obj["act_range_parts"], float),
                            bit_options=np.asarray(obj["bit_options"], dtype=np.int64),
                            num_timesteps=int(obj["num_timesteps"]), settings=dict(obj["settings"]),
                            budget_scope=obj["budget_scope"],
                            a_overhead=(np.asarray(obj["a_overhead"], float) if "a_overhead" in obj else None))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"not a dadq allocation (missing or bad field {e}); export one with "
                             "Allocation.save or `python -m dadq allocate --out`.") from None
        if fmt == OLD_ALLOCATION_FORMAT:
            alloc = _upgrade(common, profile)
        alloc.check(profile=profile)
        return alloc

    @classmethod
    def load(cls, path: str | Path, profile=None) -> "Allocation":
        """Read and check an allocation file; with ``profile``, also check that it belongs to it."""
        try:
            obj = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ValueError(f"no allocation file at {path}.") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path} is not valid JSON ({e}); it is corrupt or truncated.") from None
        return cls.from_dict(obj, profile)


def _upgrade(common: dict, profile) -> Allocation:
    """An old-format allocation completed from the profile it was made from (checked first)."""
    shell = Allocation(**common, d_w=np.zeros(common["w_bits"].shape), d_a=np.zeros(common["a_bits"].shape),
                       w_numel=profile.w_numel, a_numel=profile.a_numel,
                       act_range=np.zeros(common["a_bits"].shape + (2,)),
                       act_range_parts=np.zeros(common["a_bits"].shape + (2, 2)), a_split=profile.a_split,
                       bit_options=profile.bits,
                       num_timesteps=profile.num_timesteps, settings=profile.settings(),
                       budget_scope="mean" if _joint_shared(common["weight_mode"], common["target"], common["budget"])
                       else "group")
    shell.check(profile=profile)
    shell.d_w = chosen_distortion(profile.d_w, profile.bits, shell.w_bits)
    shell.d_a = chosen_distortion(profile.d_a, profile.bits, shell.a_bits)
    shell.act_range = profile.activation_ranges_for(shell.a_bits)
    shell.act_range_parts = profile.activation_part_ranges_for(shell.a_bits)
    return shell


def _joint_shared(weight_mode: str, target: str, budget) -> bool:
    """Shared weights under one joint W+A budget: one weight copy couples the groups' budgets."""
    return weight_mode == "shared" and target == "wa" and not isinstance(budget, (tuple, list))


def _choose(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{name}={value!r}: choose one of {choices}.")


def allocate(profile, budget: float | None = None, lam: float | None = None, target: str = "wa",
             method: str = "lagrangian", weight_mode: str = "per-group", w_budget: float | None = None,
             a_budget: float | None = None, budget_scope: str | None = None, fp_top: bool = False,
             fp_input: bool = False, group_weights=None) -> Allocation:
    """Bit allocation per timestep group from a Profile.

    Give exactly one of:
      budget              average bits per element of the target (all W and A elements for 'wa', W for
                          'w', A for 'a') per denoising step;
      w_budget, a_budget  separate W and A budgets (average bits each; target 'wa');
      lam                 the slope λ: distortion (summed over quantizers, mean over groups) per average
                          bit. Always the Lagrangian point: with lam, leave method at 'lagrangian'.
    target: 'wa' | 'w' (A stays FP) | 'a' (W stays FP). method: one of METHODS.
    weight_mode: 'per-group' (the paper: weights may differ per group; stored size counts every
      distinct copy) or 'shared' (one weight allocation minimising the sum over groups).
    budget_scope: 'group' (every group meets the budget: bounds the peak per step; the paper) or
      'mean' (the mean over groups of the per-step size meets it: bounds the average over the
      trajectory, so bits move to the groups that need them; all groups form one knapsack).
      None: 'group', except shared weights under a joint W+A budget, which is always 'mean': the one
      weight copy is in every group, so the groups share one knapsack (an explicit 'group' is an
      error there). With shared weights, a weights-only budget is the same in both scopes.
    fp_top: offer full precision (FP_BITS bits per element, zero distortion) as the top point of every
      targeted curve, so a quantizer whose distortion stays high at the widest profiled width (the
      model's input x_t at the last steps, read by conv_in) can buy it where it is worth the bits.
    fp_input: the model input x_t (the input activations of the layers that read it, ``INPUT_LAYERS``) stays
      at full precision in every group, outside the budget: the budget bounds the average bits of the other
      elements of the target, and the real average (``group_avg_bits``) counts x_t at FP_BITS per element.
      Why: at 8 bits per tensor, x_t's rounding error in the high-noise groups is small in eps (the profile
      prices it low) but moves the whole trajectory; keeping it FP costs one image's elements per step,
      a small share of all activations (0.1% on the default model).
    group_weights: float [G] >= 0, or None (all 1): each group's D counts w_g times (scaled to mean 1) where
      groups share a solve: a knapsack over groups (budget_scope 'mean', shared weights) and the slope λ.
      A budget met per group is solved per group, where a constant factor changes nothing. Pass
      ``dadq.trajectory_gain(model, profile.groups)``: the profile's D is one step's eps distortion, blind to
      how far the sampler carries an error made at that group's steps. Or a mapping {"w": [G], "a": [G]}:
      weights and activations each weighted by their own (a kind left out or None counts 1 in every group),
      since an activation error and a weight error need not travel along the trajectory alike.
    """
    _choose("target", target, TARGETS)
    _choose("weight_mode", weight_mode, WEIGHT_MODES)
    _choose("method", method, METHODS)
    if isinstance(budget, (tuple, list)):
        raise ValueError("budget is one number (average bits); for separate W and A budgets pass "
                         "w_budget=... and a_budget=....")
    if lam is not None and method != "lagrangian":
        raise ValueError(f"lam={lam:g} asks for the Lagrangian point, method={method!r} for another solver: give a "
                         "budget with that method, or lam alone.")
    separate = w_budget is not None or a_budget is not None
    if separate and (w_budget is None or a_budget is None):
        raise ValueError("separate budgets need both w_budget and a_budget (average bits each).")
    if separate and target != "wa":
        raise ValueError("separate W and A budgets apply to target 'wa'.")
    if sum(x is not None for x in (budget, lam)) + separate != 1:
        raise ValueError("give exactly one of budget (average bits), w_budget and a_budget, or lam (slope).")
    joint_shared = _joint_shared(weight_mode, target, (w_budget, a_budget) if separate else budget)
    if budget_scope is None:
        budget_scope = "mean" if joint_shared else "group"
    _choose("budget_scope", budget_scope, BUDGET_SCOPES)
    rounding = profile.settings().get("rounding", "rtn")
    if weight_mode == "shared" and per_group_hessian(rounding):
        raise ValueError(f"weight_mode='shared' keeps one weight copy for all groups, but this profile's rounding "
                         f"{rounding!r} rounds a weight per group (one Hessian per group): use "
                         "weight_mode='per-group', or a profile with a pooled Hessian (rounding 'gptq-act').")
    if budget_scope == "group" and joint_shared:
        raise ValueError("shared weights under a joint W+A budget can bound only the mean over groups: use "
                         "budget_scope='mean', separate budgets (w_budget, a_budget), or weight_mode='per-group'.")

    G, L, bits = profile.num_groups, profile.num_layers, profile.bits
    pinned = _pinned_inputs(profile, fp_input)
    weights = _group_weights(profile, group_weights)
    idx = {k: np.full((G, L), -1, dtype=np.int64) for k in ("w", "a")}  # -1: full precision
    parts = [("w", w_budget), ("a", a_budget)] if separate else [(target, budget)]
    solved = []  # the kinds allocated (the others stay FP)
    for part, b_avg in parts:
        kinds = ["w", "a"] if part == "wa" else [part]
        solved += kinds
        numel = target_numel(profile, part)  # elements of one step's target
        if "a" in kinds:  # the pinned FP inputs are outside the budget
            numel -= float(profile.a_numel[pinned].sum())
        # A knapsack is a list of blocks of L rows: (kind, group), group None = the one shared weight copy
        # (D summed over groups, size counted once per group, so the budget bounds the mean over groups).
        if weight_mode == "shared" and "w" in kinds:
            knapsacks = [[("w", None)] + [("a", g) for g in range(G) if "a" in kinds]]
        elif budget_scope == "mean":
            knapsacks = [[(k, g) for g in range(G) for k in kinds]]
        else:
            knapsacks = [[(k, g) for k in kinds] for g in range(G)]
        for blocks in knapsacks:
            steps = G if len(knapsacks) == 1 else 1  # denoising steps (one per group) the knapsack covers
            d, s, keep = knapsack_rows(profile, blocks, pinned, fp_top, weights)
            ch = np.full(len(d), len(bits))  # len(bits): full precision
            ch[keep] = _solve_part(d[keep], s[keep], b_avg, numel, steps, lam, method, bits)
            ch = np.where(ch == len(bits), -1, ch)
            for bi, (k, g) in enumerate(blocks):
                idx[k][slice(None) if g is None else g] = ch[bi * L:(bi + 1) * L]

    w_bits, a_bits = (np.where(idx[k] >= 0, bits[np.maximum(idx[k], 0)], FP_BITS) for k in ("w", "a"))
    notes = []
    if budget_scope == "mean" and lam is None:
        notes.append("budget scope 'mean': the budget bounds the mean over groups of the per-step size; "
                     "single groups may use more")
    if fp_input and "a" in solved:
        names = ", ".join(n for n, p in zip(profile.layer_names, pinned) if p)
        notes.append(f"fp_input: the model input x_t ({names}'s input) stays at full precision, outside the budget")
    groups_share = lam is not None or budget_scope == "mean" or (weight_mode == "shared" and "w" in solved)
    if weights is not None and not groups_share:
        notes.append("group_weights: no effect, since every group meets its own budget (budget scope 'group'); they "
                     "act where groups share a solve: budget scope 'mean', shared weights, or a slope λ")
    elif weights is not None:
        by = {k: "unweighted" if weights[k] is None else " ".join(f"{v:.3g}" for v in weights[k])
              for k in ("w", "a") if k in solved}
        text = next(iter(by.values())) if len(set(by.values())) == 1 else "; ".join(f"{k.upper()} {t}" for k, t in by.items())
        notes.append(f"{GROUP_WEIGHTED_NOTE} by {text} (mean 1) in the solve; the D shown stays the profile's")
    if fp_top:
        n_fp = sum(int((idx[k] == -1).sum()) for k in solved)
        notes.append(f"fp_top: full precision offered as the top point of every curve; {n_fp} of "
                     f"{len(solved) * G * L} (group, quantizer) choices took it, at {FP_BITS} bits per element")
    return Allocation(
        layer_names=list(profile.layer_names), w_bits=w_bits, a_bits=a_bits,
        d_w=chosen_distortion(profile.d_w, bits, w_bits), d_a=chosen_distortion(profile.d_a, bits, a_bits),
        w_numel=profile.w_numel.astype(np.int64), a_numel=profile.a_numel.astype(np.int64),
        act_range=profile.activation_ranges_for(a_bits), a_split=profile.a_split.astype(np.int64),
        act_range_parts=profile.activation_part_ranges_for(a_bits), bit_options=bits.astype(np.int64),
        num_timesteps=int(profile.num_timesteps), fingerprint=profile.fingerprint, settings=profile.settings(),
        method=method, target=target, weight_mode=weight_mode, budget_scope=budget_scope,
        budget=(w_budget, a_budget) if separate else budget, lam=lam, notes=notes,
        a_overhead=profile.a_overhead_bits if profile.token_layers() else None,
    )


def knapsack_rows(profile, blocks, pinned: np.ndarray, fp_top: bool = False, weights: np.ndarray | None = None):
    """The rows of one knapsack: (d [R, M'], s [R, M'] in bits, keep bool [R]).

    blocks: (kind, group) pairs of L rows each, group None = the one shared weight copy (D summed over
    groups, size counted once per group). fp_top: one more option per row, index M: nothing lost,
    FP_BITS per element. keep: False on the rows ``pinned`` [L] at full precision (activations only),
    which stay out of the solve. weights: {kind: float [G] or None} (``_group_weights``), each group's D of that
    kind multiplied by its weight (None: 1)."""
    G, L = profile.num_groups, profile.num_layers
    w = {k: np.ones(G) if weights is None or weights.get(k) is None else weights[k] for k in ("w", "a")}
    reps = [G if g is None else 1 for _, g in blocks]
    d = np.concatenate([np.tensordot(w["w"], profile.d_w, axes=1) if g is None else w[k][g] * profile.curves(k)[g]
                        for k, g in blocks])
    s = np.concatenate([profile.sizes(k) * r for (k, _), r in zip(blocks, reps)])
    if fp_top:
        numel = {"w": profile.w_numel, "a": profile.a_numel}
        fp = np.concatenate([numel[k].astype(np.float64) * r for (k, _), r in zip(blocks, reps)])
        d = np.hstack([d, np.zeros((len(d), 1))])
        s = np.hstack([s, fp[:, None] * float(FP_BITS)])
    keep = np.concatenate([~pinned if k == "a" else np.ones(L, dtype=bool) for k, _ in blocks])
    return d, s, keep


def _pinned_inputs(profile, fp_input: bool) -> np.ndarray:
    """bool [L]: the layers whose input stays at full precision: with fp_input, those that read the model
    input (``models.INPUT_LAYERS``); else none."""
    from .models import INPUT_LAYERS

    if not fp_input:
        return np.zeros(profile.num_layers, dtype=bool)
    rows = np.array([n in INPUT_LAYERS for n in profile.layer_names], dtype=bool)
    if not rows.any():
        raise ValueError(f"fp_input: none of this profile's layers reads the model input ({', '.join(INPUT_LAYERS)}); "
                         "profile those layers, or leave fp_input off.")
    return rows


def _group_weights(profile, weights) -> dict | None:
    """``allocate``'s group_weights checked, as {"w": float [G] or None, "a": float [G] or None}, each scaled to
    mean 1 (None: all 1); None when no kind is weighted."""
    if weights is None:
        return None
    if isinstance(weights, dict):
        unknown = set(weights) - {"w", "a"}
        if unknown:
            raise ValueError(f"group_weights: keys {sorted(unknown)} are not quantizer kinds; give {{'w': [...], 'a': "
                             "[...]}} (weights, activations), or one list for both.")
        out = {k: None if weights.get(k) is None else _one_group_weights(profile, weights[k]) for k in ("w", "a")}
        return None if out["w"] is None and out["a"] is None else out
    w = _one_group_weights(profile, weights)
    return {"w": w, "a": w}


def _one_group_weights(profile, weights) -> np.ndarray:
    """float [G] scaled to mean 1, or ValueError naming the fix."""
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    G = profile.num_groups
    if w.shape != (G,) or not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"group_weights: give {G} finite weights >= 0, not all zero, one per timestep group of the "
                         f"profile (got {np.asarray(weights).tolist()}); dadq.trajectory_gain(model, profile.groups) "
                         "measures them.")
    return w / w.mean()


def _solve_part(d, s, b_avg, numel, steps, lam, method, bits):
    """Option indices [rows] of one knapsack over ``steps`` denoising steps of ``numel`` elements each.

    With lam: the Lagrangian point of D + λ·(size / numel), i.e. λ in D per average bit of one step;
    the choice is separable per row, so pooling groups does not change it. Else the budget is
    b_avg average bits per step, b_avg·numel·steps bits in all."""
    if lam is not None:
        return lagrangian_choice(d, s / numel, lam)
    try:
        return solve(d, s, b_avg * (numel * steps), method)
    except ValueError as e:
        if "infeasible" in str(e):
            lo = smallest_budget(s) / (numel * steps)
            raise ValueError(f"budget {b_avg:g} average bits is infeasible: the smallest feasible budget "
                             f"is {lo:.4g} average bits (every quantizer at {bits.min()} bits).") from None
        raise


# --- trade-off curves for display ----------------------------------------------------------------

def _hull_curve(d: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(total size [K], total D [K]) along the Lagrangian sweep of one knapsack (rows of d, s)."""
    start, moves, _ = hull_path(d, s)
    rows = np.arange(len(d))
    size = [float(s[rows, start].sum())]
    dist = [float(d[rows, start].sum())]
    cur = start.copy()
    for i, o in moves:
        size.append(size[-1] + s[i, o] - s[i, cur[i]])
        dist.append(dist[-1] + d[i, o] - d[i, cur[i]])
        cur[i] = o
    return np.asarray(size), np.asarray(dist)


def rd_sweep(profile, target: str = "wa", g: int | None = None, scope: str = "mean", fp_input: bool = False,
             fp_top: bool = False):
    """The Lagrangian trade-off of the whole model, per-group weights: (avg_bits [K], D [K]) from the
    smallest to the largest size; avg_bits per element of the target per step, D summed over
    quantizers; both the mean over groups.

    g: one group's curve. Else scope 'mean': all groups pooled in one knapsack (the frontier of
    budget_scope='mean'); 'group': every group at the same budget x, each at its largest hull point
    that fits (the Lagrangian allocations of budget_scope='group'; a staircase).
    fp_input, fp_top: as in ``allocate``, so the frontier is the one its allocations lie on (x_t's
    full-precision elements count in avg_bits, as in ``Allocation.group_avg_bits``)."""
    _choose("target", target, TARGETS)
    _choose("scope", scope, BUDGET_SCOPES)
    kinds = ["w", "a"] if target == "wa" else [target]
    numel = target_numel(profile, target)
    pinned = _pinned_inputs(profile, fp_input and "a" in kinds)

    def curve(groups):
        d, s, keep = knapsack_rows(profile, [(k, gg) for gg in groups for k in kinds], pinned, fp_top)
        size, dist = _hull_curve(d[keep], s[keep])
        return size + len(groups) * float(profile.a_numel[pinned].sum()) * FP_BITS, dist

    if g is not None or scope == "mean":
        groups = range(profile.num_groups) if g is None else [g]
        size, dist = curve(groups)
        return size / (numel * len(groups)), dist / len(groups)
    curves = [curve([gg]) for gg in range(profile.num_groups)]
    xs = np.unique(np.concatenate([c[0] for c in curves]))
    xs = xs[xs >= max(c[0][0] for c in curves)]  # every group fits
    ys = np.mean([c[1][np.searchsorted(c[0], xs, side="right") - 1] for c in curves], axis=0)
    return xs / numel, ys


def uniform_points(profile, target: str = "wa"):
    """Uniform allocations: every targeted quantizer at bits[m]. Returns (bits [M], avg_bits [M],
    distortion [M]), the distortion being the mean over groups of the summed per-quantizer D."""
    kinds = ["w", "a"] if target == "wa" else [target]
    d = sum(profile.curves(k).sum(axis=1) for k in kinds)  # [G, M]
    return profile.bits.astype(int), profile.bits.astype(np.float64), d.mean(axis=0)


def sweep_slopes(sweep) -> np.ndarray:
    """Positive slopes −ΔD/Δavg_bits between consecutive hull points: the λ values of the sweep."""
    xs, ys = (np.asarray(v, dtype=np.float64) for v in sweep)
    dx, dy = np.diff(xs), -np.diff(ys)
    ok = (dx > 0) & (dy > 0)
    return dy[ok] / dx[ok]


def lambda_range(sweeps) -> tuple[float, float, float]:
    """(lo, hi, mid) of log10 λ for a slider spanning every slope of the given sweeps, with half a
    decade of margin on each side: below lo every quantizer takes its top width, above hi its lowest."""
    slopes = np.concatenate([sweep_slopes(s) for s in sweeps] or [np.array([1.0])])
    slopes = slopes[np.isfinite(slopes) & (slopes > 0)]
    if slopes.size == 0:
        return -1.0, 1.0, 0.0
    lo = math.floor(2 * math.log10(slopes.min())) / 2 - 0.5
    hi = math.ceil(2 * math.log10(slopes.max())) / 2 + 0.5
    return lo, hi, float(np.round(np.log10(np.median(slopes)), 2))


def uniform_shortfall(profile, alloc) -> str | None:
    """Why a uniform allocation uses fewer bits than its budget, or None. The uniform solver takes,
    per knapsack, the least-distortion width among those that fit, not the widest: where a profile's
    summed D is not monotone in the width (a width's D above a narrower one's), it stays narrower."""
    if alloc.method != "uniform" or alloc.lam is not None:
        return None
    budgets = dict(zip("wa", alloc.budget)) if isinstance(alloc.budget, (tuple, list)) else None
    bits = [int(b) for b in profile.bits]
    kinds = ["w", "a"] if alloc.target == "wa" else [alloc.target]
    short = {}  # (chosen, widest) -> [groups]
    for g in range(profile.num_groups):
        for k in kinds if budgets else kinds[:1]:
            budget = budgets[k] if budgets else alloc.budget
            chosen = int((alloc.w_bits if k == "w" else alloc.a_bits)[g].max())
            fits = [b for b in bits if b <= budget + 1e-9]
            if fits and chosen < max(fits):
                short.setdefault((chosen, max(fits)), []).append(g)
    if not short:
        return None
    parts = []
    for (chosen, widest), groups in short.items():
        d = sum(profile.curves(k)[groups].sum(axis=1) for k in kinds).mean(axis=0)  # [M], mean over these groups
        i, j = bits.index(chosen), bits.index(widest)
        gtext = f"group {groups[0]}" if len(groups) == 1 else f"groups {', '.join(map(str, groups))}"
        rise = {(k, li): float(c[li, j] - c[li, i]) for k in kinds
                for c in [profile.curves(k)[groups].mean(axis=0)] for li in range(profile.num_layers)}
        (k, li), _ = max(rise.items(), key=lambda kv: kv[1])
        c = profile.curves(k)[groups].mean(axis=0)[li]
        parts.append(f"{gtext} use {chosen} bits, not {widest}: their summed profiled D at {widest} bits "
                     f"({d[j]:.3g}) is above that at {chosen} bits ({d[i]:.3g}), mostly from "
                     f"{profile.layer_names[li]} {'weights' if k == 'w' else 'activations'} (D {c[i]:.3g} at "
                     f"{chosen} bits, {c[j]:.3g} at {widest})")
    return ("uniform takes the least-distortion width that fits, not the widest; " + "; ".join(parts)
            + ". The curves are not monotone there, so the unused bits would not lower D")


def pin_bits(alloc: Allocation, profile, layers, bits: int = 8) -> Allocation:
    """``alloc`` with ``layers`` (names) at ``bits`` in every group: the common-practice rule of PTQ
    baselines (Q-Diffusion, PTQ4DM) that keeps the first and last layers at 8 bits. Quantizers the
    allocation left at full precision stay there.

    Only the quantizers ``alloc``'s target covers are pinned (target 'w': weights; 'wa': weights and
    activations), so the average bits it reports (``group_avg_bits``) rise by what the pinned layers add:
    the rule is not budget-neutral, and a caller shows its real average beside the budget. The D,
    activation ranges and notes follow the new widths; method and budget stay those asked for."""
    import dataclasses

    names = list(profile.layer_names)
    missing = [n for n in layers if n not in names]
    if missing:
        raise ValueError(f"pin_bits: {missing} are not layers of this profile (its first and last: {names[0]!r}, "
                         f"{names[-1]!r}); name profiled layers.")
    if int(bits) not in [int(b) for b in profile.bits]:
        raise ValueError(f"pin_bits: {bits} bits is not one of the profile's widths {profile.bits.tolist()}; pick "
                         "one of those (its curves give the pinned layers' D).")
    idx = [names.index(n) for n in layers]
    w_bits, a_bits = alloc.w_bits.copy(), alloc.a_bits.copy()
    # a quantizer the allocation keeps at full precision (fp_input, fp_top) stays there: the rule lifts
    # the ends to `bits`, it does not quantize what was left unquantized
    w_bits[:, idx] = np.where(w_bits[:, idx] == FP_BITS, FP_BITS, bits)
    if alloc.target in ("wa", "a"):
        a_bits[:, idx] = np.where(a_bits[:, idx] == FP_BITS, FP_BITS, bits)
    if alloc.target == "a":
        w_bits = alloc.w_bits.copy()
    return dataclasses.replace(
        alloc, w_bits=w_bits, a_bits=a_bits, d_w=chosen_distortion(profile.d_w, profile.bits, w_bits),
        d_a=chosen_distortion(profile.d_a, profile.bits, a_bits), act_range=profile.activation_ranges_for(a_bits),
        act_range_parts=profile.activation_part_ranges_for(a_bits),
        notes=[*alloc.notes, f"{', '.join(layers)} pinned at {bits} bits (not budget-neutral)"])
