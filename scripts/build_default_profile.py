"""Build the shipped profile of a model with the core's dadq.profile (default: the embedded MNIST DDPM).

    python -m scripts.build_default_profile                      # -> assets/default/profile.safetensors
    python -m scripts.build_default_profile --model assets/fashion --out assets/fashion/profile.safetensors
"""
from __future__ import annotations

import argparse
import sys

import dadq


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="default")
    p.add_argument("--out", default=str(dadq.models.DEFAULT_MODEL_DIR / "profile.safetensors"))
    p.add_argument("--groups", type=int, default=10)
    p.add_argument("--bits", default="2-8")
    p.add_argument("--calib", type=int, default=32, help="calibration samples per group (interactive default: 16)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    lo, hi = (int(x) for x in args.bits.split("-"))
    model = dadq.load_model(args.model)
    prof = dadq.profile(model, groups=args.groups, bits=range(lo, hi + 1), calib_per_group=args.calib,
                        mode="exact", seed=args.seed)
    prof.meta["command"] = "python -m scripts.build_default_profile " + " ".join(sys.argv[1:] if argv is None else argv)
    prof.save(args.out)
    print(f"{args.out}: {prof.num_layers} layers x {prof.num_groups} groups x bits {prof.bits.tolist()}, "
          f"{prof.meta['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
