"""Which timestep groups carry the FID gap of a DADQ allocation: the low-noise half or the high-noise half?

    python -m experiments.group_halves              # -> experiments/results/group_halves.json
    python -m experiments.group_halves --quick      # 64 samples, 25 steps

Takes DADQ's exact W 4 allocation (budget as the mean over groups) of the profile (the shipped one unless
--profile names one) and samples it with its weights quantized in every group, only in the low-noise
groups (the last steps) and only in the high-noise groups (the first steps), the other groups' layers at
full precision; FP from the same sampler and seed beside them. The profile's D prices each group by one
step's eps error; this asks FID which half of the trajectory the gap comes from.
"""
from __future__ import annotations

from benchmarks.common import EXPERIMENT_RESULTS, command_line, machine_facts, print_table, sampling_experiment, write_result
from experiments.sweep import SAMPLE_BATCH

NAME = "group_halves"
BUDGET = 4.0  # average weight bits of the allocation


def quantize_only(dadq, model, prof, alloc, groups: list[int], fp_layers=()):
    """``alloc``'s quantized model with every layer at full precision outside ``groups``, and the layers named in
    ``fp_layers`` at full precision in every group."""
    from dadq.bitwidths import FP_BITS

    q = dadq.quantize(model, prof, alloc)
    for name, ql in q.unet.layers.items():
        keep = set() if name in fp_layers else set(groups)
        ql.w_bits = [b if g in keep else FP_BITS for g, b in enumerate(ql.w_bits)]
        ql.a_bits = [b if g in keep else FP_BITS for g, b in enumerate(ql.a_bits)]
    return q


def fid_rows(dadq, model, prof, alloc, args, variants, previous: dict | None = None) -> list[dict]:
    """FID of FP and of ``alloc`` quantized per variant, (label, groups, fp_layers[, adjust]) each, all from the
    same sampler and seed (``args``: n, steps, seed). adjust(q, prof): changes the quantized model further (its
    name is kept in the row). previous: {label: row} of an earlier run of the same setup, reused instead of
    sampled again (``previous_rows``)."""
    from dadq.metrics import dataset_reference

    ref = dataset_reference("mnist")
    rows = []
    for label, groups, fp_layers, *adjust in [("FP", None, ())] + list(variants):
        adjust = adjust[0] if adjust else None
        row = (previous or {}).get(label)
        if row is None:
            m = model if groups is None else quantize_only(dadq, model, prof, alloc, groups, fp_layers)
            if adjust is not None:
                adjust(m, prof)
            x = dadq.sample(m, n=args.n, steps=args.steps, seed=args.seed, batch_size=SAMPLE_BATCH, desc=label[:40])
            row = {"row": label, "groups": groups, "fp_layers": list(fp_layers), "fid": dadq.fid(x, reference=ref)}
            if adjust is not None:
                row["adjust"] = adjust.__name__
        rows.append(row)
    return rows


def previous_rows(path, setup: dict, keys=("n", "steps", "seed", "fingerprint")) -> dict:
    """{label: row} of the result at ``path`` when its setup has the same ``keys`` as ``setup`` (samples, sampler,
    seed, profile), else {}: rows a rerun with more variants need not sample again."""
    import json
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        return {}
    old = json.loads(path.read_text())
    same = all(old.get("setup", {}).get(k) == setup.get(k) for k in keys)
    return {r["row"]: r for r in old["rows"]} if same else {}


def halves(num_groups: int) -> list[tuple[str, list[int], tuple]]:
    """The variants (label, groups, fp_layers) of every group, the low-noise half only and the high-noise half only."""
    low, high = list(range(num_groups // 2)), list(range(num_groups // 2, num_groups))
    return [("every group", low + high, ()), (f"low-noise groups {low[0]}-{low[-1]} only", low, ()),
            (f"high-noise groups {high[0]}-{high[-1]} only", high, ())]


def main(argv=None) -> int:
    import dadq

    args, model, prof = sampling_experiment(__doc__, argv, n=1000, seed=1, quick_n=64)
    alloc = dadq.allocate(prof, budget=BUDGET, target="w", method="exact", budget_scope="mean")
    G = prof.num_groups
    rows = fid_rows(dadq, model, prof, alloc, args, halves(G))
    print_table(["row", "FID"], [[r["row"], r["fid"]] for r in rows],
                title=f"W {BUDGET:g} DADQ exact, mean over groups: {args.n} samples, DDIM-{args.steps}, seed {args.seed}")
    write_result(NAME, {"benchmark": NAME, "command": command_line(NAME, "experiments"), "machine": machine_facts(),
                        "setup": {"n": args.n, "steps": args.steps, "seed": args.seed, "groups": G, "budget": BUDGET,
                                  "group_avg_bits": [float(b) for b in alloc.group_avg_bits],
                                  "profile_settings": prof.settings(), "fingerprint": prof.fingerprint},
                        "rows": rows}, args.out, EXPERIMENT_RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
