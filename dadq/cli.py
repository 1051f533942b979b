"""``python -m dadq <command>``: profile, gain, allocate, sample, fid, sweep.

Every command prints one clear line and exits 2 on bad input, without a traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from .allocate import BUDGET_SCOPES, METHODS, TARGETS, WEIGHT_MODES
from .bitwidths import parse_bits
from .distortion import DEFAULT_METRIC, METRICS
from .profile import MODES
from .quant import ACT_GRANULARITIES, WEIGHT_GRIDS
from .rounding import ROUNDINGS
from .trajectory import GAIN_FILE, GAIN_SETTINGS, gain_record, load_gain


def _bits(text: str) -> list[int]:
    try:
        return parse_bits(text)
    except ValueError as e:  # argparse shows an ArgumentTypeError's own words
        raise argparse.ArgumentTypeError(str(e)) from None


def _write_csv(frame, path) -> None:
    from .io import atomic_path

    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _model_args(p):
    p.add_argument("--model", default="default", help="'default', a diffusers folder, a UNet config .json, or a hub id")
    p.add_argument("--device", default=None, help="cpu (default) or cuda")


def _cond_args(p, labels: bool = True):
    if labels:
        p.add_argument("--class-labels", default=None,
                       help="class-conditional models: '0-9' (a range), '3,3,7' (a list), '7' (one class) or 'random' "
                            "(seeded); cycled over the samples. Default: 0, 1, ..., K-1, 0, 1, ...")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance scale (needs a null class; 1 = none). Default: the model's own "
                        "(dit: its dadq.json), none for unconditional models")


def _class_labels(text: str | None, n: int, model, seed: int):
    """--class-labels text -> n int labels (or None: the model's default)."""
    if text is None:
        return None
    if model.conditioning != "class":
        raise ValueError(f"--class-labels: {model.source} is not a class-conditional model.")
    if text.strip().lower() == "random":
        return np.random.default_rng(seed).integers(0, model.num_classes, n)
    try:
        if "-" in text:
            lo, hi = text.split("-")
            labels = list(range(int(lo), int(hi) + 1))
        else:
            labels = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--class-labels {text!r}: write a range like 0-9, a list like 3,3,7, one class, or random") from None
    if not labels:
        raise ValueError(f"--class-labels {text!r} names no class.")
    return np.resize(np.array(labels), n)


def _quant_args(p):
    p.add_argument("--profile", default=None,
                   help="profile .safetensors (default: the one in the model's folder, e.g. the shipped default's)")
    p.add_argument("--alloc", default=None, help="allocation .json from `dadq allocate --out`")
    p.add_argument("--budget", type=float, default=None, help="average bits (if no --alloc)")
    _alloc_args(p)


def _alloc_args(p):
    p.add_argument("--target", default="wa", choices=TARGETS)
    p.add_argument("--method", default="lagrangian", choices=METHODS)
    p.add_argument("--weight-mode", default="per-group", choices=WEIGHT_MODES)
    p.add_argument("--budget-scope", default=None, choices=BUDGET_SCOPES,
                   help="group: every timestep group meets the budget (peak per step; default); mean: the mean "
                        "over groups does (average over the trajectory); shared weights with a joint budget: mean")
    p.add_argument("--fp-top", action="store_true",
                   help="offer full precision (32 bits, no distortion) as the top point of every curve")
    p.add_argument("--fp-input", action="store_true",
                   help="keep the model input x_t (conv_in's input) at full precision, outside the budget")
    p.add_argument("--group-weights", default=None,
                   help="weigh each timestep group's D where groups share a solve: a gain JSON from `dadq gain`, or "
                        "G numbers like 1,1,2,...")
    p.add_argument("--group-weights-power", type=float, default=1.0,
                   help="raise the group weights to this power (0.5: the square root; default 1)")


def _group_weights(args):
    """--group-weights (a `dadq gain` JSON or comma-separated numbers) ** --group-weights-power, or None."""
    text = args.group_weights
    if text is None:
        return None
    if Path(text).is_file():
        w = load_gain(text)[0]
    else:
        try:
            w = [float(v) for v in text.split(",")]
        except ValueError:
            raise ValueError(f"--group-weights {text!r}: give a gain JSON file of `python -m dadq gain --out`, or one "
                             "number per timestep group like 1,1,2,4") from None
    return np.asarray(w, dtype=np.float64) ** args.group_weights_power


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m dadq", description="Distribution-aware mixed-precision PTQ of diffusion models.")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("profile", help="measure RD curves per timestep group -> profile .safetensors")
    _model_args(p)
    p.add_argument("--groups", type=int, default=10, help="timestep groups G (default 10)")
    p.add_argument("--bits", type=_bits, default=list(range(2, 9)), help="candidate bit widths, e.g. 2-8 (default) or 1-10")
    p.add_argument("--calib", type=int, default=16, help="calibration samples per group (default 16)")
    p.add_argument("--calib-steps", type=int, default=None,
                   help="DDIM steps of the calibration trajectories (default max(100, 2G); fewer is faster, coarser)")
    p.add_argument("--mode", default="exact", choices=MODES)
    p.add_argument("--layers", action="append", default=None, help="glob of layer names to profile ('re:' for regex); repeatable")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounding", default="rtn", choices=ROUNDINGS,
                   help="weight rounding (default rtn; gptq: error-compensating; gptq-act: gptq in activation order; "
                        "-group: one Hessian per timestep group, one weight copy per group; -clip: each channel's clip "
                        "ratio chosen by the layer's output error after GPTQ)")
    p.add_argument("--bias-correction", action="store_true", help="fold each quantized layer's mean output shift into its bias")
    p.add_argument("--held-out-seed", type=int, default=None,
                   help="measure the curves on a second draw of trajectories from this calibration seed, held out from "
                        "the fitting of rounding, bias correction and ranges (default: on the fitting inputs)")
    p.add_argument("--weight-grid", default="symmetric", choices=WEIGHT_GRIDS,
                   help="per-channel weight grid: symmetric (zero point 0, narrow range; default) or asymmetric "
                        "(a zero point per channel: every level of the width over the channel's range)")
    p.add_argument("--act-granularity", default="tensor", choices=ACT_GRANULARITIES,
                   help="activation ranges: one per tensor (default), per token of each Linear input (transformers), "
                        "or per sample at run time (each sample's own range per layer); each token's or sample's "
                        "range is counted in the activation size")
    p.add_argument("--metric", default=DEFAULT_METRIC, choices=list(METRICS), help="distortion D of the RD curves")
    p.add_argument("--no-split-concat", dest="split_concat", action="store_false",
                   help="one activation range for a concatenated skip input instead of one per part")
    _cond_args(p, labels=False)
    p.add_argument("--out", required=True, help="output .safetensors")
    p.add_argument("--csv", default=None, help="also write the curves as a long CSV table (Profile.to_frame)")

    p = sub.add_parser("gain", help="trajectory gain per timestep group: how far an eps error there moves the "
                                    "final sample -> JSON for allocate --group-weights")
    _model_args(p)
    p.add_argument("--groups", type=int, default=10, help="timestep groups G (default 10; the profile's)")
    p.add_argument("--n", type=int, default=GAIN_SETTINGS["n"], help="samples (default %(default)s)")
    p.add_argument("--steps", type=int, default=GAIN_SETTINGS["steps"],
                   help="sampler steps (default %(default)s; the ones you deploy)")
    p.add_argument("--sampler", default="ddim", choices=["ddim", "ddpm"])
    p.add_argument("--seed", type=int, default=GAIN_SETTINGS["seed"])
    p.add_argument("--sigma", type=float, default=GAIN_SETTINGS["sigma"],
                   help="standard deviation of the added eps error (default %(default)s)")
    p.add_argument("--out", default=None, help=f"write the gain JSON here ({GAIN_FILE} in a model's folder: the app "
                                               "offers it as group weights)")

    p = sub.add_parser("allocate", help="bit allocation from a profile, by budget or slope")
    p.add_argument("--profile", required=True)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--budget", type=float, help="average bits per element of the target")
    g.add_argument("--lam", type=float, help="slope λ (distortion per average bit)")
    g.add_argument("--wa-budgets", nargs=2, type=float, metavar=("W", "A"), help="separate W and A average bits")
    _alloc_args(p)
    p.add_argument("--measure", action="store_true", help="also measure the real distortion (additivity check); needs --model")
    p.add_argument("--model", default=None)
    p.add_argument("--out", default=None, help="write the allocation JSON here")
    p.add_argument("--csv", default=None, help="write the allocation as a long CSV table (Allocation.to_frame)")

    p = sub.add_parser("sample", help="FP and quantized samples from identical noise -> PNG grids")
    _model_args(p)
    _quant_args(p)
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--steps", type=int, default=50, help="DDIM steps (or DDPM steps with --sampler ddpm; 0 = all T)")
    p.add_argument("--sampler", default="ddim", choices=["ddim", "ddpm"])
    p.add_argument("--seed", type=int, default=0)
    _cond_args(p)
    p.add_argument("--out", default="samples", help="output folder (fp.png, quantized.png)")

    p = sub.add_parser("fid", help="FID of FP and quantized samples (MNIST-classifier features by default)")
    _model_args(p)
    _quant_args(p)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--sampler", default="ddim", choices=["ddim", "ddpm"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--feature", default="mnist", choices=["mnist", "inception"])
    _cond_args(p)

    p = sub.add_parser("sweep", help="predicted distortion of every method over a list of budgets")
    p.add_argument("--profile", required=True)
    p.add_argument("--budgets", default="3,4,5,6,8", help="comma-separated average bits")
    p.add_argument("--target", default="wa", choices=TARGETS)
    p.add_argument("--budget-scope", default=None, choices=BUDGET_SCOPES)
    p.add_argument("--out", default=None, help="write JSON here")
    return ap


def _profile_for(args, model):
    import dadq

    path = args.profile or dadq.models.default_profile_path(args.model)
    if path is None:
        raise ValueError(f"no profile ships with model {args.model!r}: give --profile, or make one with "
                         "`python -m dadq profile`.")
    prof = dadq.Profile.load(path)
    prof.check_model(model)
    return prof


def _alloc_kw(args) -> dict:
    return dict(target=args.target, method=args.method, weight_mode=args.weight_mode, budget_scope=args.budget_scope,
                fp_top=args.fp_top, fp_input=args.fp_input, group_weights=_group_weights(args))


def _quantized(args, model):
    """(quantized model, allocation): from --alloc (it carries what quantizing needs; checked against
    the model, and against --profile where given) or from --budget on the model's profile."""
    import dadq

    if args.alloc:
        prof = _profile_for(args, model) if args.profile else None
        alloc = dadq.Allocation.load(args.alloc, profile=prof)
    elif args.budget is not None:
        prof = _profile_for(args, model)
        alloc = dadq.allocate(prof, budget=args.budget, **_alloc_kw(args))
    else:
        raise ValueError("give --alloc FILE or --budget BITS to say how to quantize.")
    return dadq.quantize(model, prof, alloc), alloc


def _print_alloc(alloc, profile) -> None:
    s = alloc.summary()
    print(f"method {s['method']}, target {s['target']}, weights {s['weight_mode']}, budget scope {s['budget_scope']}; "
          f"mean W+A size per step {s['mean_group_avg_bits']:.3f} avg bits; stored weights "
          f"{s['stored_weight_MB']:.3f} MB vs FP32 {s['fp32_weight_MB']:.3f} MB ({s['compression_x']:.2f}x)")
    labels = profile.groups.labels()
    print(f"{'group':>12} {'avg bits':>9} {'predicted D':>12}")
    for g in range(profile.num_groups):
        print(f"{labels[g]:>12} {alloc.group_avg_bits[g]:9.3f} {alloc.predicted[g]:12.5g}")


def run(args) -> int:
    import dadq

    if args.cmd == "profile":
        model = dadq.load_model(args.model, device=args.device)
        prof = dadq.profile(model, groups=args.groups, bits=args.bits, calib_per_group=args.calib, mode=args.mode,
                            calib_steps=args.calib_steps,
                            layers=args.layers, seed=args.seed, guidance_scale=args.guidance, rounding=args.rounding,
                            bias_correction=args.bias_correction, metric=args.metric, split_concat=args.split_concat,
                            act_granularity=args.act_granularity, weight_grid=args.weight_grid,
                            held_out_seed=args.held_out_seed)
        prof.save(args.out)
        if args.csv:
            _write_csv(prof.to_frame(), args.csv)
        print(f"profile of {len(prof.layer_names)} layers x {prof.num_groups} groups x bits {prof.bits.tolist()} "
              f"({prof.meta['seconds']:.1f} s, mode {args.mode}) -> {args.out}")
    elif args.cmd == "gain":
        model = dadq.load_model(args.model, device=args.device)
        groups = dadq.TimestepGroups(model.num_timesteps, args.groups)
        gain = dadq.trajectory_gain(model, groups, n=args.n, steps=args.steps, seed=args.seed, sigma=args.sigma,
                                    sampler=args.sampler)
        print(f"{'group':>12} {'gain':>10}   (final-sample MSE per unit eps MSE added at that group's steps)")
        for lab, v in zip(groups.labels(), gain):
            print(f"{lab:>12} {v:10.4g}")
        if args.out:
            dadq.io.write_json(args.out, gain_record(model, groups, gain, n=args.n, steps=args.steps,
                                                     sampler=args.sampler, seed=args.seed, sigma=args.sigma))
            print(f"gain -> {args.out}")
    elif args.cmd == "allocate":
        prof = dadq.Profile.load(args.profile)
        kw = _alloc_kw(args)
        if args.lam is not None:
            alloc = dadq.allocate(prof, lam=args.lam, **kw)
        elif args.wa_budgets:
            alloc = dadq.allocate(prof, w_budget=args.wa_budgets[0], a_budget=args.wa_budgets[1], **kw)
        else:
            alloc = dadq.allocate(prof, budget=args.budget, **kw)
        _print_alloc(alloc, prof)
        if args.measure:
            if not args.model:
                raise ValueError("--measure needs --model (the model the profile was made from).")
            model = dadq.load_model(args.model)
            prof.check_model(model)
            r = dadq.additivity(model, prof, alloc)
            print("additivity: measured / predicted per group: " + " ".join(f"{x:.3f}" for x in r["ratio"])
                  + f"; correlation {r['correlation']:.3f}")
        if args.out:
            alloc.save(args.out)
            print(f"allocation -> {args.out}")
        if args.csv:
            _write_csv(alloc.to_frame(), args.csv)
            print(f"allocation table -> {args.csv}")
    elif args.cmd == "sample":
        model = dadq.load_model(args.model, device=args.device)
        qmodel, alloc = _quantized(args, model)
        fp, q = dadq.sample_pair(model, qmodel, n=args.n, steps=args.steps, seed=args.seed, sampler=args.sampler,
                                 class_labels=_class_labels(args.class_labels, args.n, model, args.seed),
                                 guidance_scale=args.guidance)
        out = Path(args.out)
        dadq.images.save_grid(fp, out / "fp.png")
        dadq.images.save_grid(q, out / "quantized.png")
        psnr, ssim = dadq.paired_psnr_ssim(fp, q)
        print(f"{args.n} pairs, {args.sampler.upper()}-{args.steps}, seed {args.seed}: paired PSNR {np.mean(psnr):.2f} dB, "
              f"SSIM {np.mean(ssim):.4f} -> {out}/fp.png, {out}/quantized.png")
    elif args.cmd == "fid":
        from dadq.metrics import FID_LABEL

        model = dadq.load_model(args.model, device=args.device)
        qmodel, alloc = _quantized(args, model)
        fp, q = dadq.sample_pair(model, qmodel, n=args.n, steps=args.steps, seed=args.seed, sampler=args.sampler,
                                 class_labels=_class_labels(args.class_labels, args.n, model, args.seed),
                                 guidance_scale=args.guidance)
        f_fp = dadq.fid(fp, feature=args.feature)
        f_q = dadq.fid(q, feature=args.feature)
        label = FID_LABEL if args.feature == "mnist" else "Inception FID"
        print(json.dumps({"metric": label, "n": args.n, "sampler": f"{args.sampler.upper()}-{args.steps}",
                          "seed": args.seed, "fid_fp": round(f_fp, 4), "fid_quantized": round(f_q, 4),
                          "allocation": alloc.summary()}, indent=2))
    elif args.cmd == "sweep":
        prof = dadq.Profile.load(args.profile)
        budgets = [float(b) for b in args.budgets.split(",")]
        rows = []
        for b in budgets:
            row = {"budget": b}
            for meth in METHODS:
                try:
                    row[meth] = float(np.mean(dadq.allocate(prof, budget=b, target=args.target, method=meth,
                                                            budget_scope=args.budget_scope).predicted))
                except ValueError:
                    row[meth] = None
            rows.append(row)
            print("  ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
        if args.out:
            dadq.io.write_json(args.out, rows)
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError, KeyError) as e:
        msg = str(e).strip("'\"") or type(e).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return 130
