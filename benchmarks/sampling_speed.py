"""Sampling speed: quantized (fake-quant) sampling time / FP sampling time.

    python -m benchmarks.sampling_speed            # n=16, DDIM-50, 5 interleaved repeats
    python -m benchmarks.sampling_speed --quick    # n=8, DDIM-10, 3 repeats

Variants, all sampled from the same seed with dadq.sample:
  fp          the FP model
  q_wa4       dadq.quantize(model, prof, dadq.allocate(prof, budget=4))   (W+A, Lagrangian, per-group)
  q_w4        weights only: dadq.allocate(prof, budget=4, target="w")   (activations stay FP)
  wrapper_fp  dadq's QuantizedUNet with every layer at full precision: the wrapper's own overhead
  with --layout, also fp_default_layout and q_wa4_default_layout: the same models with their
              convolution weights in torch's default layout instead of dadq's channels_last
              (``dadq.models.use_fast_layout``); their time / FP is the layout's speed-up
  with --w4a8 NAME=PATH,..., also w4a8_NAME: W4A8 over each profile (exact, budget over the mean of
              the groups, x_t at FP, the headline's row without group weights), e.g. a profile with
              static activation ranges beside one with ranges per sample: the run-time cost of the latter
Each variant first runs once cold (timed separately: the quantized weights are computed and cached
on first use), then the variants alternate ``--repeats`` times in rotating order; the reported
ratio is the median over repeats of (variant time / FP time in the same round).
Target (DESIGN.md §6): quantized / FP <= 1.3.
"""
from __future__ import annotations

import argparse

import numpy as np

from benchmarks.common import (add_common_args, command_line, get_profile, interleaved, load_model, loadavg,
                               machine_facts, median, print_table, ratio_summary, setup_threads, timed, write_result)

NAME = "sampling_speed"
TARGET_RATIO = 1.3


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, "n=8, DDIM-10, 3 repeats")
    p.add_argument("--model", default="default", help="'default' or 'random' (development: random weights)")
    p.add_argument("--profile", default=None, help="profile file (default: the shipped one)")
    p.add_argument("--n", type=int, default=None, help="images per run (default 16)")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default 50)")
    p.add_argument("--repeats", type=int, default=None, help="interleaved repeats per variant (default 5)")
    p.add_argument("--budget", type=float, default=4.0, help="average bits of the allocations")
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the profile file")
    p.add_argument("--layout", action="store_true",
                   help="also time the FP and W+A models with their weights in torch's default layout")
    p.add_argument("--w4a8", default=None, metavar="NAME=PATH,...",
                   help="also time W4A8 (exact, budget over the mean of the groups, x_t at FP) over each named profile")
    args = p.parse_args(argv)
    threads = setup_threads(args.threads)
    import dadq
    from dadq.models import DiffusionModel
    from dadq.quant import LayerCalibration, QuantizedUNet

    n = args.n or (8 if args.quick else 16)
    steps = args.steps or (10 if args.quick else 50)
    repeats = args.repeats or (3 if args.quick else 5)
    load0 = loadavg()
    model = load_model(args.model)
    prof = get_profile(model, args.model, args.profile, args.wait)
    allocs = {
        "q_wa4": dadq.allocate(prof, budget=args.budget, target="wa", method="lagrangian"),
        "q_w4": dadq.allocate(prof, budget=args.budget, target="w", method="lagrangian"),
    }
    models = {"fp": model}
    for k, a in allocs.items():
        models[k] = dadq.quantize(model, prof, a)
    w4a8 = {}
    for item in (args.w4a8.split(",") if args.w4a8 else []):
        name, _, path = item.partition("=")
        if not name or not path:
            raise SystemExit(f"--w4a8: {item!r} is not NAME=PATH.")
        other = get_profile(model, args.model, path)
        w4a8[name] = {"path": path, "settings": other.settings()}
        models[f"w4a8_{name}"] = dadq.quantize(model, other, dadq.allocate(
            other, w_budget=4.0, a_budget=8.0, target="wa", method="exact", budget_scope="mean", fp_input=True))
    wrapper = QuantizedUNet(model.unet, prof.groups, prof.layer_names).eval()
    models["wrapper_fp"] = DiffusionModel(wrapper, model.scheduler, source="wrapper, all FP")
    if args.layout:
        import torch

        import dadq.models

        dadq.models.FAST_LAYOUT = False
        plain = load_model(args.model)
        plain.unet.to(memory_format=torch.contiguous_format)
        models["fp_default_layout"] = plain
        q_plain = models["q_wa4_default_layout"] = dadq.quantize(plain, prof, allocs["q_wa4"])
        # its own weight caches: a GPTQ calibration (and its cached weights) is shared per model fingerprint
        for ql in q_plain.unet.layers.values():
            ql.calib = LayerCalibration(factor=ql.calib.factor, in_mean=ql.calib.in_mean)
        dadq.models.FAST_LAYOUT = True

    def run(name):
        return dadq.sample(models[name], n=n, steps=steps, seed=0)

    print(f"n={n}, DDIM-{steps}, {repeats} repeats, torch threads {threads}", flush=True)
    cold = {}
    images = {}
    for k in models:
        images[k], cold[k] = timed(run, k)
        print(f"cold {k}: {cold[k]:.2f} s", flush=True)
    fns = {k: (lambda k=k: run(k)) for k in models}
    times = interleaved(fns, repeats, on_rep=lambda r, rep: print(
        f"repeat {r + 1}: " + ", ".join(f"{k} {v:.2f} s" for k, v in rep.items()), flush=True))

    ratios = {k: ratio_summary(times[k], times["fp"]) for k in models if k != "fp"}
    from dadq.metrics import paired_psnr_ssim

    quality = {}
    for k in allocs:
        psnr, ssim = paired_psnr_ssim(images["fp"], images[k])
        quality[k] = {"paired_ssim_mean": float(np.mean(ssim)), "paired_psnr_mean": float(np.mean(psnr))}
    rows = [["fp", median(times["fp"]), 1.0, "", "", cold["fp"]]]
    for k in ratios:
        r = ratios[k]
        rows.append([k, median(times[k]), r["median"], r["min"], r["max"], cold[k]])
    print()
    print_table(["variant", "median s", "time / FP (median)", "min", "max", "cold s"], rows,
                title=f"sampling n={n}, DDIM-{steps} ({repeats} interleaved repeats; ratios per round)")
    targets = {k: {"value": ratios[k]["median"], "target": f"<= {TARGET_RATIO}",
                   "pass": ratios[k]["median"] <= TARGET_RATIO} for k in allocs}
    for k, v in targets.items():
        print(f"{k}: quantized / FP = {v['value']:.3f} (target <= {TARGET_RATIO}): {'PASS' if v['pass'] else 'FAIL'}")

    write_result(NAME, {
        "benchmark": NAME, "command": command_line(NAME), "quick": args.quick, "machine": machine_facts(),
        "loadavg_start": load0, "loadavg_end": loadavg(),
        "setup": {"model": args.model, "layout": "channels_last" + (" and default" if args.layout else ""),
                  "profile": str(args.profile or "assets/default/profile.safetensors"),
                  "profile_groups": prof.num_groups, "n": n, "sampler": "ddim", "steps": steps, "seed": 0,
                  "repeats": repeats, "budget_avg_bits": args.budget,
                  "allocations": {k: a.summary() for k, a in allocs.items()}, "w4a8_profiles": w4a8},
        "targets": targets, "ratios_vs_fp": ratios, "raw_seconds": times, "cold_seconds": cold,
        "paired_quality": quality,
    }, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
