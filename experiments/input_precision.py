"""Where 8-bit activations lose quality: the model input x_t, read by conv_in, at high noise.

    python -m experiments.input_precision              # -> experiments/results/input_precision.json
    python -m experiments.input_precision --n 64       # smaller, faster

Samples FP and quantized images from the same noise (DDIM; the shipped profile unless --profile names one) and scores
each quantized run by paired MSE and SSIM against FP. Rows:
  activations at 8 bits (weights FP), with conv_in's input quantized in every group, in none, and
    at full precision only in the low-noise or only in the high-noise groups: which steps it hurts;
  every other input at full precision with conv_in's at 8 bits, and the reverse: whether x_t is
    most of the cost;
  DADQ exact at W 4 and W4A8 (scope mean), W4A8 and W+A 6 with and without ``fp_input``, and the
    strong uniform baseline (first/last layers 8 bits) at W4A8 with and without it.
"""
from __future__ import annotations

import numpy as np

from benchmarks.common import EXPERIMENT_RESULTS, command_line, machine_facts, print_table, sampling_experiment, write_result

NAME = "input_precision"
INPUT = "conv_in"


def _rows(dadq, prof):
    """(label, allocation, groups where conv_in's input runs at FP, keep only conv_in's input quantized)."""
    from dadq.allocate import pin_bits

    G = prof.num_groups
    a8 = dadq.allocate(prof, budget=8, target="a", method="uniform")
    low, high = list(range(G // 2)), list(range(G // 2, G))
    yield "A 8, weights FP", a8, [], False
    yield "A 8, conv_in's input FP", a8, list(range(G)), False
    yield f"A 8, conv_in's input FP in the low-noise groups {low[0]}-{low[-1]}", a8, low, False
    yield f"A 8, conv_in's input FP in the high-noise groups {high[0]}-{high[-1]}", a8, high, False
    yield "A 8 on conv_in's input only", a8, [], True
    mean = dict(method="exact", budget_scope="mean")
    yield "W 4 DADQ", dadq.allocate(prof, budget=4, target="w", **mean), [], False
    for fp_input in (False, True):
        tail = ", x_t at FP (fp_input)" if fp_input else ""
        yield f"W4A8 DADQ{tail}", dadq.allocate(prof, w_budget=4, a_budget=8, fp_input=fp_input, **mean), [], False
        uni = dadq.allocate(prof, w_budget=4, a_budget=8, method="uniform", fp_input=fp_input)
        yield f"W4A8 uniform, first/last layers 8{tail}", pin_bits(uni, prof, [INPUT, "conv_out"], 8), [], False
        yield f"W+A 6 DADQ{tail}", dadq.allocate(prof, budget=6, target="wa", fp_input=fp_input, **mean), [], False


def main(argv=None) -> int:
    import dadq
    from dadq.bitwidths import FP_BITS

    args, model, prof = sampling_experiment(__doc__, argv, n=128, seed=7, quick_n=32)
    if INPUT not in prof.layer_names:
        raise SystemExit(f"the profile has no {INPUT}; profile the whole model.")
    fp = dadq.sample(model, n=args.n, steps=args.steps, seed=args.seed, desc="FP")
    rows = []
    for label, alloc, fp_groups, only_input in _rows(dadq, prof):
        q = dadq.quantize(model, prof, alloc)
        for name, ql in q.unet.layers.items():
            if name == INPUT:
                ql.a_bits = [FP_BITS if g in fp_groups else b for g, b in enumerate(ql.a_bits)]
            elif only_input:
                ql.a_bits = [FP_BITS] * len(ql.a_bits)
        x = dadq.sample(q, n=args.n, steps=args.steps, seed=args.seed, desc=label[:40])
        _, ssim = dadq.paired_psnr_ssim(fp, x)
        # the bits that ran (the overrides above included), mean over groups, FP counted at FP_BITS
        run = {k: np.array([getattr(q.unet.layers[n], f"{k}_bits") for n in alloc.layer_names]) for k in ("w", "a")}
        avg = {k: float((run[k] * numel[:, None]).sum(0).mean() / numel.sum())
               for k, numel in (("w", alloc.w_numel), ("a", alloc.a_numel))}
        rows.append({"row": label, "paired_mse": float((x - fp).pow(2).mean()), "paired_ssim_mean": float(ssim.mean()),
                     "w_avg_bits": avg["w"], "a_avg_bits": avg["a"], "input_fp_groups": fp_groups})
    print_table(["row", "paired MSE", "paired SSIM", "W bits", "A bits"],
                [[r["row"], r["paired_mse"], r["paired_ssim_mean"], r["w_avg_bits"], r["a_avg_bits"]] for r in rows],
                title=f"{args.n} samples, DDIM-{args.steps}, seed {args.seed}, against FP from the same noise")
    write_result(NAME, {"benchmark": NAME, "command": command_line(NAME, "experiments"), "machine": machine_facts(),
                        "setup": {"n": args.n, "steps": args.steps, "seed": args.seed, "groups": prof.num_groups,
                                  "profile_settings": prof.settings(), "fingerprint": prof.fingerprint},
                        "rows": rows}, args.out, EXPERIMENT_RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
