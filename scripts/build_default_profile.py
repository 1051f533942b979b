"""Build the shipped profile of a model with the core's dadq.profile (default: the embedded MNIST DDPM).

    # the shipped default profile (GPTQ in activation order, bias correction, 32 calibration samples per group;
    # measured best in images over every setting of issue 18):
    python -m scripts.build_default_profile --calib 32 --rounding gptq-act --bias-correction --no-split-concat
    # the shipped Fashion-MNIST profile (the same recipe):
    python -m scripts.build_default_profile --model assets/fashion --calib 32 --rounding gptq-act --bias-correction \
        --no-split-concat --out assets/fashion/profile.safetensors
    # the same recipe with 16 calibration samples per group, which issue 18's grids measured:
    python -m scripts.build_default_profile --calib 16 --rounding gptq-act --bias-correction --no-split-concat \
        --out experiments/results/profiles/gptq_act/default_gptqact_bc_calib16.safetensors
    python -m scripts.build_default_profile --model assets/fashion --calib 16 --rounding gptq-act --bias-correction \
        --no-split-concat --out experiments/results/profiles/gptq_act/fashion_gptqact_bc_calib16.safetensors
    # the plain GPTQ profiles (columns left to right) that issue 18's grids measured:
    python -m scripts.build_default_profile --calib 16 --rounding gptq --bias-correction --no-split-concat \
        --out experiments/results/profiles/gptq/default_gptq_bc_calib16.safetensors
    python -m scripts.build_default_profile --model assets/fashion --calib 16 --rounding gptq --bias-correction \
        --no-split-concat --out experiments/results/profiles/gptq/fashion_gptq_bc_calib16.safetensors
    # the earlier round-to-nearest profiles, which the sweeps before issue 18 used:
    python -m scripts.build_default_profile --calib 16 --no-split-concat --out assets/default/profile_rtn.safetensors
"""
from __future__ import annotations

import argparse
import re
import sys

import dadq
from dadq.distortion import DEFAULT_METRIC, METRICS
from dadq.profile import SPLIT_CONCAT_DEFAULT
from dadq.quant import ACT_GRANULARITIES, WEIGHT_GRIDS
from dadq.rounding import ROUNDINGS


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--out", default=str(dadq.models.DEFAULT_MODEL_DIR / "profile.safetensors"))
    p.add_argument("--groups", type=int, default=10)
    p.add_argument("--bits", default="2-8")
    p.add_argument("--calib", type=int, default=32, help="calibration samples per group (interactive default: 16)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mode", default="exact", choices=["exact", "naive", "fast"])
    p.add_argument("--rounding", default="rtn", choices=ROUNDINGS)
    p.add_argument("--bias-correction", action="store_true")
    p.add_argument("--weight-grid", default="symmetric", choices=WEIGHT_GRIDS)
    p.add_argument("--act-granularity", default="tensor", choices=ACT_GRANULARITIES,
                   help="activation ranges: per tensor (default), per token, or per sample at run time")
    p.add_argument("--held-out-seed", type=int, default=None, help="curves measured on this calibration seed's draw")
    p.add_argument("--metric", default=DEFAULT_METRIC, choices=list(METRICS))
    p.add_argument("--split-concat", dest="split_concat", action="store_true", default=SPLIT_CONCAT_DEFAULT)
    p.add_argument("--no-split-concat", dest="split_concat", action="store_false")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    args = p.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    lo, hi = (int(x) for x in args.bits.split("-"))
    model = dadq.load_model(args.model)
    prof = dadq.profile(model, groups=args.groups, bits=range(lo, hi + 1), calib_per_group=args.calib,
                        mode=args.mode, seed=args.seed, rounding=args.rounding,
                        bias_correction=args.bias_correction, metric=args.metric, split_concat=args.split_concat,
                        weight_grid=args.weight_grid, held_out_seed=args.held_out_seed,
                        act_granularity=args.act_granularity)
    # the thread count changes the time, not the curves: it is recorded apart from the command
    cmd = " ".join(sys.argv[1:] if argv is None else argv)
    prof.meta["command"] = ("python -m scripts.build_default_profile " + re.sub(r"\s*--threads[= ]\d+", "", cmd)).strip()
    prof.meta["threads"] = args.threads
    prof.save(args.out)
    print(f"{args.out}: {prof.num_layers} layers x {prof.num_groups} groups x bits {prof.bits.tolist()}, "
          f"{prof.meta['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
