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


def quantize_only(dadq, model, prof, alloc, groups: list[int]):
    """``alloc``'s quantized model with every layer at full precision outside ``groups``."""
    from dadq.bitwidths import FP_BITS

    q = dadq.quantize(model, prof, alloc)
    for ql in q.unet.layers.values():
        ql.w_bits = [b if g in groups else FP_BITS for g, b in enumerate(ql.w_bits)]
        ql.a_bits = [b if g in groups else FP_BITS for g, b in enumerate(ql.a_bits)]
    return q


def main(argv=None) -> int:
    import dadq
    from dadq.metrics import dataset_reference

    args, model, prof = sampling_experiment(__doc__, argv, n=1000, seed=1, quick_n=64)
    alloc = dadq.allocate(prof, budget=BUDGET, target="w", method="exact", budget_scope="mean")
    G = prof.num_groups
    low, high = list(range(G // 2)), list(range(G // 2, G))
    ref = dataset_reference("mnist")
    rows = []
    for label, groups in (("FP", None), ("every group", low + high), (f"low-noise groups {low[0]}-{low[-1]} only", low),
                          (f"high-noise groups {high[0]}-{high[-1]} only", high)):
        m = model if groups is None else quantize_only(dadq, model, prof, alloc, groups)
        x = dadq.sample(m, n=args.n, steps=args.steps, seed=args.seed, batch_size=SAMPLE_BATCH, desc=label[:40])
        rows.append({"row": label, "groups": groups, "fid": dadq.fid(x, reference=ref)})
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
