"""Solver speed: one full re-allocation (all G timestep groups) per method, and the exact-vs-Lagrangian gap.

    python -m benchmarks.solver_speed            # synthetic curves + the shipped default profile
    python -m benchmarks.solver_speed --quick    # fewer repeats and budgets

Problems (per group: N quantizers x M bit-width options, minimise sum D s.t. sum size <= budget):
  synthetic  G=10 groups x N=128 quantizers x M=7 bit widths (2..8). Sizes = numel x bits, numel
             drawn from the real default UNet's 64 weight and 64 input-activation element counts
             (with +-25% log-normal jitter, rounded to a multiple of 16 like the real counts).
             Curves D(b) = a * 2^(-2b) * exp(0.35 z), a log-uniform over 5 decades, then made
             non-increasing in b: convex-ish, but not exactly convex, so budgets fall off the hull.
  real       the shipped profile (assets/default/profile.safetensors), joint W+A: 64 layers x
             2 kinds = 128 quantizers per group, via dadq.solve per group and via dadq.allocate.
Budgets are average bits per element over all W and A elements (3, 4, 6 for the timings).

Reported: ms per full re-allocation (the G groups; median of interleaved repeats), which exact
path ran (DP over sizes / GCD, or scipy's MILP), and at budgets 3.0 .. 6 the predicted distortion
of every method against dadq's exact solver and against the certified optimum. Targets
(DESIGN.md §6): Lagrangian <= 20 ms, exact <= 1 s for the 10 groups.

dadq's exact solver is reduced-cost fixing with the Lagrangian dual bound, then a DP over the
remaining capacity. "reference: HiGHS MILP" (scipy.optimize.milp, mip_rel_gap=0) is an independent
exact solver: it certifies that optimum (to HiGHS's feasibility tolerances).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import (DEFAULT_PROFILE, add_common_args, command_line, fmt, loadavg, machine_facts, median,
                               print_table, setup_threads, wait_for, write_result)
from dadq.allocate import METHODS

NAME = "solver_speed"
REFERENCE = "reference: HiGHS MILP"  # an independent exact solver that certifies dadq's (see reference_exact)
SOLVE_METHODS = METHODS + (REFERENCE,)
TIME_BUDGETS = (3.0, 4.0, 6.0)
GAP_BUDGETS = (3.0, 3.5, 4.0, 4.5, 5.0, 6.0)
BITS = np.arange(2, 9)
TARGET_LAGRANGIAN_MS = 20.0
TARGET_EXACT_MS = 1000.0


# --- problems ----------------------------------------------------------------------------------------

def real_numels() -> tuple[np.ndarray, np.ndarray, str]:
    """(w_numel [L], a_numel [L]) of the default UNet: from the shipped profile if present, else
    from the same architecture built with random weights (one hooked forward)."""
    import dadq

    if DEFAULT_PROFILE.exists():
        prof = dadq.Profile.load(DEFAULT_PROFILE)
        return prof.w_numel.astype(np.int64), prof.a_numel.astype(np.int64), "shipped profile"
    import torch

    from benchmarks.common import load_model
    from dadq.models import quantizable_layers

    model = load_model("random")
    layers = quantizable_layers(model.unet)
    a = {}

    def hook(name):
        def fn(mod, inp, out):
            a.setdefault(name, inp[0][0].numel())  # returns None: the output is left alone
        return fn

    hooks = [m.register_forward_hook(hook(n)) for n, m in layers]
    c, h, w = model.sample_shape
    with torch.no_grad():
        model.eps(torch.zeros(1, c, h, w), torch.zeros(1, dtype=torch.long))
    for hk in hooks:
        hk.remove()
    return (np.array([m.weight.numel() for _, m in layers], dtype=np.int64),
            np.array([a[n] for n, _ in layers], dtype=np.int64), "random-weight default architecture")


def synthetic_problem(w_numel, a_numel, groups: int = 10, n: int = 128, bits=BITS, seed: int = 0):
    """d [G, N, M], s [N, M] (bits) and total numel."""
    rng = np.random.default_rng(seed)
    pool = np.concatenate([w_numel, a_numel]).astype(np.float64)
    numel = pool[rng.integers(0, len(pool), n)] * np.exp(0.25 * rng.standard_normal(n))
    numel = np.maximum(16, np.rint(numel / 16) * 16)
    s = numel[:, None] * bits[None, :].astype(np.float64)
    d = np.empty((groups, n, len(bits)))
    for g in range(groups):
        a = 10 ** rng.uniform(-2, 3, n)
        curve = a[:, None] * 2.0 ** (-2.0 * bits[None, :]) * np.exp(0.35 * rng.standard_normal((n, len(bits))))
        d[g] = np.minimum.accumulate(curve, axis=1)  # non-increasing in b
    return d, s, float(numel.sum())


def real_problem(prof):
    """d [G, 2L, M] (W rows then A rows, as dadq.allocate builds them for target 'wa'), s [2L, M]."""
    d = np.concatenate([prof.d_w, prof.d_a], axis=1)
    s = np.concatenate([prof.sizes("w"), prof.sizes("a")])
    return d, s, float(prof.w_numel.sum() + prof.a_numel.sum())


def exact_path(d: np.ndarray, s: np.ndarray, budget: float) -> str:
    """Which exact path dadq.solve takes on group 0 of this problem (mirrors dadq.allocate._exact)."""
    from dadq.allocate import _dp, _reduced_cost_keep

    if not (np.allclose(s, np.rint(s)) and s.max() > 0):
        return "MILP (non-integer sizes)"
    keep = _reduced_cost_keep(d[0], s, budget)
    if _dp(d[0], s, budget, keep) is not None:
        return f"reduced-cost fixing + DP ({keep.sum()} of {keep.size} options kept)"
    return "plain DP" if _dp(d[0], s, budget) is not None else "MILP (DP table too large)"


def reference_exact(d, s, budget):
    """The certified optimum from an independent solver: HiGHS's MILP with mip_rel_gap=0."""
    from dadq.allocate import _milp

    return _milp(d, s, budget)


# --- timing -----------------------------------------------------------------------------------------

def reallocate(d, s, budget_bits, method):
    import dadq

    if method == REFERENCE:
        return [reference_exact(d[g], s, budget_bits) for g in range(d.shape[0])]
    return [dadq.solve(d[g], s, budget_bits, method) for g in range(d.shape[0])]


def time_problem(d, s, numel, budgets, repeats: dict, label: str) -> list[dict]:
    """Per budget: interleaved repeats of every method's full re-allocation; ms per re-allocation."""
    rows = []
    for b in budgets:
        bb = b * numel
        times = {m: [] for m in SOLVE_METHODS}
        n_rounds = max(repeats.values())
        rep = dict(repeats, **{REFERENCE: repeats['exact']})
        for r in range(n_rounds):
            order = SOLVE_METHODS[r % len(SOLVE_METHODS):] + SOLVE_METHODS[:r % len(SOLVE_METHODS)]
            for m in order:
                if r >= rep[m]:
                    continue
                t0 = time.perf_counter()
                reallocate(d, s, bb, m)
                times[m].append((time.perf_counter() - t0) * 1e3)
        for m in SOLVE_METHODS:
            rows.append({"problem": label, "budget_avg_bits": b, "method": m, "ms_median": median(times[m]),
                         "ms_min": float(min(times[m])), "ms_raw": [round(x, 3) for x in times[m]],
                         "exact_path": exact_path(d, s, bb) if m == "exact" else None})
    return rows


def time_allocate(prof, budgets, repeats: dict) -> list[dict]:
    """dadq.allocate(prof, budget=b, method=m) end to end (builds the Allocation too), and the λ path."""
    import dadq

    rows = []
    for b in budgets:
        times = {m: [] for m in METHODS}
        for r in range(max(repeats.values())):
            order = METHODS[r % len(METHODS):] + METHODS[:r % len(METHODS)]
            for m in order:
                if r >= repeats[m]:
                    continue
                t0 = time.perf_counter()
                dadq.allocate(prof, budget=b, target="wa", method=m)
                times[m].append((time.perf_counter() - t0) * 1e3)
        for m in METHODS:
            rows.append({"problem": "real: dadq.allocate", "budget_avg_bits": b, "method": m,
                         "ms_median": median(times[m]), "ms_min": float(min(times[m])),
                         "ms_raw": [round(x, 3) for x in times[m]]})
    # a slope change: the λ path (always the Lagrangian point), as the app's λ slider uses it
    lam_alloc = dadq.allocate(prof, budget=4.0, target="wa", method="lagrangian")
    lam = 1e-3
    ts = []
    for _ in range(repeats["lagrangian"]):
        t0 = time.perf_counter()
        dadq.allocate(prof, lam=lam, target="wa")
        ts.append((time.perf_counter() - t0) * 1e3)
    rows.append({"problem": "real: dadq.allocate(lam=1e-3)", "budget_avg_bits": None, "method": "lagrangian (λ)",
                 "ms_median": median(ts), "ms_min": float(min(ts)), "ms_raw": [round(x, 3) for x in ts]})
    del lam_alloc
    return rows


# --- gaps ---------------------------------------------------------------------------------------------

def gaps(d, s, numel, budgets, label: str) -> list[dict]:
    """Predicted D (summed over quantizers, mean over groups) and bits used per method, against
    dadq's exact solver and against the certified optimum of the reference solver."""
    rows_idx = np.arange(s.shape[0])
    out = []
    for b in budgets:
        bb = b * numel
        res = {}
        for m in SOLVE_METHODS:
            try:
                ch = reallocate(d, s, bb, m)
            except ValueError as e:
                res[m] = {"error": str(e)}
                continue
            if any(c is None for c in ch):
                res[m] = {"error": "reference solver does not apply (non-integer sizes or too large a table)"}
                continue
            dist = float(np.mean([d[g][rows_idx, c].sum() for g, c in enumerate(ch)]))
            used = float(np.mean([s[rows_idx, c].sum() for c in ch])) / numel
            res[m] = {"predicted_D": dist, "avg_bits_used": used,
                      "fits": bool(all(s[rows_idx, c].sum() <= bb * (1 + 1e-12) for c in ch))}
        ref = res.get("exact", {}).get("predicted_D")
        opt = res.get(REFERENCE, {}).get("predicted_D")
        for m in SOLVE_METHODS:
            r = res[m]
            if "error" in r:
                out.append({"problem": label, "budget_avg_bits": b, "method": m, "error": r["error"]})
                continue
            gap = (r["predicted_D"] / ref - 1.0) if ref and ref > 0 else None
            gap_opt = (r["predicted_D"] / opt - 1.0) if opt and opt > 0 else None
            out.append({"problem": label, "budget_avg_bits": b, "method": m, **r, "gap_vs_exact": gap,
                        "gap_vs_optimum": gap_opt})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, "fewer repeats, budgets 4 only for timing")
    p.add_argument("--repeats", type=int, default=None, help="repeats of the fast methods (default 21; quick 5)")
    p.add_argument("--exact-repeats", type=int, default=None, help="repeats of the exact solver (default 5; quick 2)")
    p.add_argument("--groups", type=int, default=10)
    p.add_argument("--profile", default=str(DEFAULT_PROFILE), help="the real profile")
    p.add_argument("--no-real", action="store_true", help="skip the real profile (synthetic only)")
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the profile file to appear")
    args = p.parse_args(argv)
    threads = setup_threads(args.threads)
    import dadq  # noqa: F401  (import cost outside the timings)

    reps_fast = args.repeats or (5 if args.quick else 21)
    reps_exact = args.exact_repeats or (2 if args.quick else 5)
    repeats = {"lagrangian": reps_fast, "greedy": reps_fast, "uniform": reps_fast, "exact": reps_exact}
    time_budgets = (4.0,) if args.quick else TIME_BUDGETS
    gap_budgets = (3.5, 4.0) if args.quick else GAP_BUDGETS
    load0 = loadavg()

    w_numel, a_numel, numel_source = real_numels()
    d_syn, s_syn, numel_syn = synthetic_problem(w_numel, a_numel, groups=args.groups)
    print(f"synthetic: G={d_syn.shape[0]} N={d_syn.shape[1]} M={d_syn.shape[2]}, numel from {numel_source}; "
          f"torch threads {threads}", flush=True)
    # warm-up (imports of scipy.optimize etc. are not part of a re-allocation)
    reallocate(d_syn[:1], s_syn, 4.0 * numel_syn, "exact")
    reallocate(d_syn[:1], s_syn, 4.0 * numel_syn, "lagrangian")

    timing = time_problem(d_syn, s_syn, numel_syn, time_budgets, repeats, "synthetic")
    gap_rows = gaps(d_syn, s_syn, numel_syn, gap_budgets, "synthetic")

    real = None
    prof_path = args.profile
    if not args.no_real and (wait_for(prof_path, args.wait) if args.wait else __import__("os").path.exists(prof_path)):
        import dadq

        prof = dadq.Profile.load(prof_path)
        d_r, s_r, numel_r = real_problem(prof)
        real = {"profile": str(prof_path), "groups": prof.num_groups, "quantizers": d_r.shape[1],
                "bits": prof.bits.tolist(), "fingerprint": prof.fingerprint,
                "calib_per_group": prof.meta.get("calib_per_group"), "mode": prof.meta.get("mode")}
        print(f"real: {prof_path}: G={prof.num_groups} N={d_r.shape[1]} M={d_r.shape[2]}", flush=True)
        timing += time_problem(d_r, s_r, numel_r, time_budgets, repeats, "real: dadq.solve x G")
        timing += time_allocate(prof, time_budgets, repeats)
        gap_rows += gaps(d_r, s_r, numel_r, gap_budgets, "real")
    else:
        print(f"no real profile at {prof_path}: synthetic only", flush=True)

    print()
    print_table(["problem", "budget", "method", "ms / re-alloc (median)", "min", "exact path"],
                [[r["problem"], r["budget_avg_bits"], r["method"], r["ms_median"], r["ms_min"], r.get("exact_path") or ""]
                 for r in timing], title=f"ms per full re-allocation ({args.groups} groups; medians of interleaved repeats)")
    print()
    print_table(["problem", "budget", "method", "predicted D", "avg bits used", "vs dadq exact", "vs optimum"],
                [[r["problem"], r["budget_avg_bits"], r["method"], r.get("predicted_D"), r.get("avg_bits_used"),
                  (f"{r['gap_vs_exact'] * 100:+.4f} %" if r.get("gap_vs_exact") is not None else r.get("error", "")),
                  (f"{r['gap_vs_optimum'] * 100:+.4f} %" if r.get("gap_vs_optimum") is not None else "")]
                 for r in gap_rows], title="predicted distortion (sum over quantizers, mean over groups); "
                                           "optimum = the certified reference solver")

    def worst(problem_prefix, method):
        xs = [r["ms_median"] for r in timing if r["problem"].startswith(problem_prefix) and r["method"] == method]
        return max(xs) if xs else None

    targets = {}
    for prob in ("synthetic", "real: dadq.solve", "real: dadq.allocate"):
        lg, ex = worst(prob, "lagrangian"), worst(prob, "exact")
        if lg is None:
            continue
        targets[prob] = {
            "lagrangian_worst_ms": lg, "lagrangian_target_ms": TARGET_LAGRANGIAN_MS,
            "lagrangian_pass": lg <= TARGET_LAGRANGIAN_MS,
            "exact_worst_ms": ex, "exact_target_ms": TARGET_EXACT_MS, "exact_pass": ex <= TARGET_EXACT_MS,
        }
    print()
    for k, v in targets.items():
        print(f"{k}: lagrangian worst {fmt(v['lagrangian_worst_ms'])} ms (target <= {TARGET_LAGRANGIAN_MS:g}): "
              f"{'PASS' if v['lagrangian_pass'] else 'FAIL'}; exact worst {fmt(v['exact_worst_ms'])} ms "
              f"(target <= {TARGET_EXACT_MS:g}): {'PASS' if v['exact_pass'] else 'FAIL'}")

    write_result(NAME, {
        "benchmark": NAME, "command": command_line(NAME), "quick": args.quick, "machine": machine_facts(),
        "loadavg_start": load0, "loadavg_end": loadavg(),
        "setup": {"groups": args.groups, "quantizers_synthetic": int(d_syn.shape[1]), "bits": BITS.tolist(),
                  "numel_source": numel_source, "repeats": repeats, "budgets_timed": list(time_budgets),
                  "budgets_gap": list(gap_budgets),
                  "unit": "ms per full re-allocation = dadq.solve called once per group for all groups",
                  "synthetic_curves": "D = a 2^(-2b) exp(0.35 z), a ~ 10^U(-2,3), cummin over b; "
                                      "numel ~ real counts x exp(0.25 z), multiple of 16"},
        "real": real, "targets": targets, "timing": timing, "gaps": gap_rows,
    }, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
