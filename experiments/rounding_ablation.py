"""Evidence for dadq's rounding options on the default model (issue 18): what each one buys, measured
out of sample where the option is fitted to calibration data.

    python -m experiments.rounding_ablation            # -> experiments/results/rounding_ablation.json

Two calibration sets from the FP model's DDIM trajectories (dadq.calibrate), seeds 0 (estimation)
and 1 (held out), G groups, N samples per group.
  hessian      GPTQ with the Hessian pooled over all groups vs one Hessian per group (estimated on
               group g only), vs round to nearest: each layer's output MSE on the held-out inputs of
               every group, at 3 and 4 bits; ratio = MSE / MSE(rtn), geometric mean over groups.
  order        GPTQ with columns left to right vs in activation order (falling Hessian diagonal,
               rounding 'gptq-act'), both with the pooled Hessian: every quantizable layer's output MSE
               on the held-out inputs, at 2-5 bits; ratio to plain GPTQ, geometric mean over groups.
  bias         D (dadq.distortion) of the whole model with one layer's weights quantized, on the held
               -out set, with and without bias correction estimated on the estimation set; rtn and gptq.
  split_concat D of the A-curves (one layer's input quantized) of the up blocks' concatenated inputs at
               4 and 6 bits, with one range per part vs one range for the whole tensor (profile, exact).
  grid         the asymmetric per-channel weight grid (a zero point per channel) against the symmetric narrow
               one, for GPTQ in activation order and for round to nearest: every quantizable layer's output
               MSE on the held-out inputs, at 2-5 bits; ratio asymmetric / symmetric, geometric mean over groups.
  clip         GPTQ in activation order with each channel's clip ratio chosen by the layer's output error after
               GPTQ (rounding 'gptq-act-clip') against by round-to-nearest weight MSE: every quantizable layer's
               output MSE on the held-out inputs, at 2-5 bits; ratio clip / gptq-act, geometric mean over groups.
  timing       dadq.profile of a layer subset, rtn vs gptq (same everything else), seconds and ratio;
               and the GPTQ setup (Hessians of all layers + GPTQ of every layer at every width) alone.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from dadq.calibrate import layer_inputs
from benchmarks.common import (
    EXPERIMENT_RESULTS,
    command_line,
    machine_facts,
    print_table,
    setup_threads,
    write_result,
)

NAME = "rounding_ablation"
HESSIAN_LAYERS = ["conv_in", "down_blocks.1.resnets.0.conv1", "down_blocks.2.attentions.0.to_v",
                  "mid_block.resnets.0.conv2", "up_blocks.0.resnets.0.conv_shortcut", "up_blocks.1.resnets.1.conv1",
                  "up_blocks.2.resnets.1.conv2", "conv_out"]
BIAS_LAYERS = ["conv_out", "conv_in", "up_blocks.2.resnets.1.conv2"]
WIDTHS = (2, 3, 4, 5)  # the widths of the order and bias parts
TIMING_LAYERS = ["conv_in", "down_blocks.1.resnets.0.conv1", "mid_block.attentions.0.to_q",
                 "up_blocks.1.resnets.0.conv1", "up_blocks.2.resnets.0.conv_shortcut", "conv_out"]


def _output_mse(ql, x: torch.Tensor, ref: torch.Tensor, w: torch.Tensor) -> float:
    """Mean squared error of layer ``ql``'s output with weight ``w`` on input ``x`` against ``ref`` (FP output)."""
    return float((ql.op(x, w, None) - ref).pow(2).mean())


@torch.no_grad()
def hessian_rows(model, est, held, bits=(3, 4)) -> list[dict]:
    from dadq.quant import QuantizedUNet, quantize_weight
    from dadq.rounding import calibration_stats, hessian_factor

    (x0, t0), (x1, t1) = est, held
    G = x0.shape[0]
    pooled = calibration_stats(model.unet, HESSIAN_LAYERS, x0, t0)
    per_group = [calibration_stats(model.unet, HESSIAN_LAYERS, x0[g:g + 1], t0[g:g + 1]) for g in range(G)]
    ins = layer_inputs(model.unet, HESSIAN_LAYERS, x1, t1)
    q = QuantizedUNet(model.unet, model_groups(G), HESSIAN_LAYERS)
    rows = []
    for name in HESSIAN_LAYERS:
        ql = q.layers[name]
        fp = [ql.op(a, ql.weight, None) for a in ins[name]]
        for b in bits:
            w_pool = quantize_weight(ql.weight, b, hessian_factor(pooled[name].hessian()))
            w_rtn = quantize_weight(ql.weight, b)
            for g in range(G):
                w_grp = quantize_weight(ql.weight, b, hessian_factor(per_group[g][name].hessian()))
                ws = {"rtn": w_rtn, "gptq_pooled": w_pool, "gptq_per_group": w_grp}
                rows.append({"layer": name, "bits": b, "group": g,
                             **{k: _output_mse(ql, ins[name][g], fp[g], w) for k, w in ws.items()}})
    return rows


# name: weight at bits b from (weight, b, {rounding: GPTQ factor}) (``held_out_rows``)
ORDER_VARIANTS = {
    "rtn": lambda w, b, f: _qw(w, b),
    "gptq": lambda w, b, f: _qw(w, b, f["gptq"]),
    "gptq_act": lambda w, b, f: _qw(w, b, f["gptq-act"]),
}
GRID_VARIANTS = {
    "rtn": lambda w, b, f: _qw(w, b),
    "rtn_asym": lambda w, b, f: _qw(w, b, grid="asymmetric"),
    "gptq_act": lambda w, b, f: _qw(w, b, f["gptq-act"]),
    "gptq_act_asym": lambda w, b, f: _qw(w, b, f["gptq-act"], grid="asymmetric"),
}
CLIP_VARIANTS = {
    "rtn": lambda w, b, f: _qw(w, b),
    "gptq_act": lambda w, b, f: _qw(w, b, f["gptq-act"]),
    "gptq_act_clip": lambda w, b, f: _qw(w, b, f["gptq-act-clip"]),
}


def _qw(w, b, factor=None, grid="symmetric"):
    from dadq.quant import quantize_weight

    return quantize_weight(w, b, factor, grid)


@torch.no_grad()
def held_out_rows(model, est, held, variants: dict, bits=WIDTHS) -> list[dict]:
    """Every quantizable layer's output MSE on the held-out inputs of each group, per weight variant
    (``ORDER_VARIANTS``, ``GRID_VARIANTS``, ``CLIP_VARIANTS``), the GPTQ Hessians from the estimation set."""
    from dadq.models import quantizable_layers
    from dadq.quant import QuantizedUNet
    from dadq.rounding import calibration_stats, hessian_factor

    (x0, t0), (x1, t1) = est, held
    G = x0.shape[0]
    names = [n for n, _ in quantizable_layers(model.unet)]
    stats = calibration_stats(model.unet, names, x0, t0)
    q = QuantizedUNet(model.unet, model_groups(G), names)
    rows = []
    for i in range(0, len(names), 16):  # held-out inputs a chunk of layers at a time: they are large
        chunk = names[i:i + 16]
        ins = layer_inputs(model.unet, chunk, x1, t1)
        for name in chunk:
            ql = q.layers[name]
            fp = [ql.op(a, ql.weight, None) for a in ins[name]]
            clip = hessian_factor(stats[name].hessian(), act_order=True, keep_h=True)
            # gptq-act is the same factor without H (which would switch on the output-error clip)
            factors = {"gptq": hessian_factor(stats[name].hessian()), "gptq-act": clip[:3] + (None,), "gptq-act-clip": clip}
            for b in bits:
                ws = {k: make(ql.weight, b, factors) for k, make in variants.items()}
                for g in range(G):
                    rows.append({"layer": name, "bits": b, "group": g,
                                 **{k: _output_mse(ql, ins[name][g], fp[g], w) for k, w in ws.items()}})
        del ins
    return rows


def ratio_summary(rows: list[dict], num: str, den: str, extra: dict) -> tuple[list[dict], list[dict]]:
    """(per layer and width: geometric mean over groups of row[num] / row[den] and of each ``extra``
    ratio {name: (num, den)}; per width: those ratios' geometric mean and median over layers, the
    layers where num is lower, and the summed MSE of every variant, mean over groups)."""
    G = len({r["group"] for r in rows})
    layers = list(dict.fromkeys(r["layer"] for r in rows))
    widths = sorted({r["bits"] for r in rows})
    keys = [k for k in rows[0] if k not in ("layer", "bits", "group")]
    per_layer = [{"layer": n, "bits": b, "ratio": geo_ratio(sel, num, den),
                  **{k: geo_ratio(sel, a, c) for k, (a, c) in extra.items()}}
                 for n in layers for b in widths
                 for sel in [[r for r in rows if r["layer"] == n and r["bits"] == b]]]
    summ = []
    for b in widths:
        sel = [p for p in per_layer if p["bits"] == b]
        ratios = np.array([p["ratio"] for p in sel])
        summ.append({"bits": b, "layers": len(sel), "ratio_geo": float(np.exp(np.mean(np.log(ratios)))),
                     "ratio_median": float(np.median(ratios)), "lower_in_layers": int((ratios < 1).sum()),
                     **{f"{k}_geo": float(np.exp(np.mean([np.log(p[k]) for p in sel]))) for k in extra},
                     "sum_mse": {k: float(sum(r[k] for r in rows if r["bits"] == b) / G) for k in keys}})
    return summ, per_layer


def variant_part(model, est, held, variants: dict, num: str, den: str, extra: tuple[str, str, str], title: str) -> dict:
    """A part comparing weight variants by held-out layer output MSE: ``ratio_summary`` of num / den and of one
    more ratio ``extra`` (name, num, den), printed; {"summary", "per_layer"} for the result."""
    name, a, b = extra
    summ, per_layer = ratio_summary(held_out_rows(model, est, held, variants), num, den, {name: (a, b)})
    print_table(["bits", "layers", f"{num}/{den} (geo)", "median", f"{num} lower in", f"{a}/{b} (geo)"],
                [[x["bits"], x["layers"], x["ratio_geo"], x["ratio_median"], x["lower_in_layers"], x[f"{name}_geo"]]
                 for x in summ], title=title)
    return {"summary": summ, "per_layer": per_layer}


def geo_ratio(rows: list[dict], num: str, den: str) -> float:
    """Geometric mean over rows of row[num] / row[den]."""
    return float(np.exp(np.mean([np.log(r[num] / r[den]) for r in rows])))


def model_groups(G):
    import dadq

    return dadq.TimestepGroups(1000, G)


@torch.no_grad()
def bias_rows(model, est, held, bits=WIDTHS) -> list[dict]:
    from dadq.distortion import distortion
    from dadq.quant import QuantizedUNet

    (x0, t0), (x1, t1) = est, held
    G = x0.shape[0]
    rows = []
    for name in BIAS_LAYERS:
        for rounding in ("rtn", "gptq"):
            for bc in (False, True):
                q = QuantizedUNet(model.unet, model_groups(G), [name]).eval()
                q.setup(x0, t0, rounding=rounding, bias_correction=bc)
                ql = q.layers[name]
                for g in range(G):
                    for split, (x, t) in (("estimation", (x0, t0)), ("held_out", (x1, t1))):
                        eps = model.eps(x[g], t[g])
                        for b in bits:
                            ql.w_bits[g] = b
                            rows.append({"layer": name, "rounding": rounding, "bias_correction": bc, "group": g,
                                         "set": split, "bits": b, "D": distortion(eps, q(x[g], t[g]).sample)})
                        ql.w_bits[g] = 32
    return rows


def split_rows(model, G, n, steps, bits=(4, 6)) -> tuple[list[dict], dict]:
    import dadq
    from dadq.quant import concat_splits

    layers = sorted(concat_splits(model.unet))
    out = {}
    for split in (False, True):
        p = dadq.profile(model, groups=G, bits=bits, calib_per_group=n, calib_steps=steps, seed=0, layers=layers,
                         split_concat=split)
        out[split] = p
    rows = []
    p0, p1 = out[False], out[True]
    for li, name in enumerate(p0.layer_names):
        for m, b in enumerate(p0.bits):
            rows.append({"layer": name, "split_channel": int(p1.a_split[li]), "bits": int(b),
                         "D_one_range": float(p0.d_a[:, li, m].mean()), "D_split": float(p1.d_a[:, li, m].mean())})
    return rows, {"extra_floats_per_group": 2 * len(layers), "layers": len(layers)}


def timing(model, G, n, steps) -> dict:
    import dadq
    from dadq.quant import _CALIB_MEMO

    out = {}
    for rounding in ("rtn", "gptq", "rtn", "gptq"):  # interleaved twice: the machine's load drifts
        _CALIB_MEMO.clear()
        t0 = time.perf_counter()
        dadq.profile(model, groups=G, bits=range(2, 9), calib_per_group=n, calib_steps=steps, mode="fast",
                     layers=TIMING_LAYERS, rounding=rounding)
        out.setdefault(rounding, []).append(time.perf_counter() - t0)
    t_stats, t_all, layers = whole_model_rounding_seconds(model, G, n, steps, "gptq")
    return {"subset_layers": TIMING_LAYERS, "profile_seconds": out,
            "ratio_gptq_over_rtn": float(np.sum(out["gptq"]) / np.sum(out["rtn"])),
            "all_layers_setup_seconds": {"hessians_and_factors": t_stats, "plus_gptq_all_widths_2_8": t_all,
                                         "layers": layers}}


def whole_model_rounding_seconds(model, G, n, steps, rounding: str) -> tuple[float, float, int]:
    """The rounding overhead of a whole-model profile: (seconds for the Hessians and factors of all layers, seconds
    for those plus the rounded weights of every layer at every width 2-8, layers)."""
    from dadq.calibrate import calibration_inputs
    from dadq.models import quantizable_layers
    from dadq.quant import _CALIB_MEMO, QuantizedUNet

    x, t = calibration_inputs(model, model_groups(G), n, seed=0, steps=steps)
    names = [nm for nm, _ in quantizable_layers(model.unet)]
    _CALIB_MEMO.clear()
    t0 = time.perf_counter()
    q = QuantizedUNet(model.unet, model_groups(G), names)
    q.setup(x, t, rounding=rounding)
    t_stats = time.perf_counter() - t0
    for ql in q.layers.values():
        for b in range(2, 9):
            ql.quantized_weight(b)
    return t_stats, time.perf_counter() - t0, len(names)


def main(argv=None) -> int:
    import dadq
    from dadq.calibrate import calibration_inputs

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--groups", type=int, default=10)
    p.add_argument("--calib", type=int, default=8, help="calibration samples per group")
    p.add_argument("--steps", type=int, default=20, help="DDIM steps of the calibration trajectories")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--parts", default="hessian,order,bias,grid,clip,split,timing")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    setup_threads(args.threads)
    parts = set(args.parts.split(","))
    model = dadq.load_model("default")
    G = args.groups
    if parts & {"hessian", "order", "bias", "grid", "clip"}:
        est = calibration_inputs(model, model_groups(G), args.calib, seed=0, steps=args.steps)
        held = calibration_inputs(model, model_groups(G), args.calib, seed=1, steps=args.steps)
    result = {"experiment": NAME, "command": command_line(NAME, "experiments"),
              "machine": machine_facts(), "setup": {"model": "default", "fingerprint": model.fingerprint(), "groups": G,
                                                   "calib_per_group": args.calib, "calib_steps": args.steps,
                                                   "estimation_seed": 0, "held_out_seed": 1}}
    if "hessian" in parts:
        rows = hessian_rows(model, est, held)
        summ = []
        for name in HESSIAN_LAYERS:
            for b in (3, 4):
                sel = [r for r in rows if r["layer"] == name and r["bits"] == b]
                summ.append({"layer": name, "bits": b, "pooled_over_rtn": geo_ratio(sel, "gptq_pooled", "rtn"),
                             "per_group_over_rtn": geo_ratio(sel, "gptq_per_group", "rtn"),
                             "per_group_over_pooled": geo_ratio(sel, "gptq_per_group", "gptq_pooled")})
        print_table(["layer", "bits", "pooled/rtn", "per-group/rtn", "per-group/pooled"],
                    [[s["layer"], s["bits"], s["pooled_over_rtn"], s["per_group_over_rtn"], s["per_group_over_pooled"]]
                     for s in summ], title="held-out layer output MSE, geometric mean over groups")
        result["hessian"] = {"summary": summ, "rows": rows}
    if "order" in parts:
        summ, per_layer = ratio_summary(held_out_rows(model, est, held, ORDER_VARIANTS), "gptq_act", "gptq",
                                        {"plain_over_rtn": ("gptq", "rtn")})
        summ = [{"bits": r["bits"], "layers": r["layers"], "act_over_plain_geo": r["ratio_geo"],
                 "act_over_plain_median": r["ratio_median"], "act_lower_in_layers": r["lower_in_layers"],
                 "plain_over_rtn_geo": r["plain_over_rtn_geo"], "sum_mse": r["sum_mse"]} for r in summ]
        per_layer = [{"layer": p["layer"], "bits": p["bits"], "act_over_plain": p["ratio"],
                      "plain_over_rtn": p["plain_over_rtn"]} for p in per_layer]
        print_table(["bits", "layers", "act/plain (geo)", "median", "act lower in", "plain/rtn (geo)"],
                    [[s["bits"], s["layers"], s["act_over_plain_geo"], s["act_over_plain_median"], s["act_lower_in_layers"],
                      s["plain_over_rtn_geo"]] for s in summ],
                    title="held-out layer output MSE, GPTQ in activation order against left to right")
        result["order"] = {"summary": summ, "per_layer": per_layer}
    if "grid" in parts:
        result["grid"] = variant_part(model, est, held, GRID_VARIANTS, "gptq_act_asym", "gptq_act",
                                      ("rtn_asym_over_rtn", "rtn_asym", "rtn"),
                                      "held-out layer output MSE, asymmetric per-channel weight grid against symmetric")
    if "clip" in parts:
        result["clip"] = variant_part(model, est, held, CLIP_VARIANTS, "gptq_act_clip", "gptq_act",
                                      ("clip_over_rtn", "gptq_act_clip", "rtn"),
                                      "held-out layer output MSE, clip ratio by output error after GPTQ against by weight MSE")
        seconds = {}
        for r in ("gptq-act", "gptq-act-clip", "gptq-act", "gptq-act-clip"):  # interleaved: the machine's load drifts
            seconds.setdefault(r, []).append(whole_model_rounding_seconds(model, G, args.calib, args.steps, r)[1])
        print("whole-model rounding at widths 2-8, seconds:", seconds)
        result["clip"].update(rounding_seconds=seconds, rounding_seconds_ratio=float(
            np.sum(seconds["gptq-act-clip"]) / np.sum(seconds["gptq-act"])))
    if "bias" in parts:
        rows = bias_rows(model, est, held)
        summ = []
        for name in BIAS_LAYERS:
            for rounding in ("rtn", "gptq"):
                for b in WIDTHS:
                    def d(bc, s, name=name, rounding=rounding, b=b):
                        return float(np.mean([r["D"] for r in rows if r["layer"] == name and r["rounding"] == rounding
                                              and r["bits"] == b and r["bias_correction"] == bc and r["set"] == s]))
                    summ.append({"layer": name, "rounding": rounding, "bits": b, "D_held_out": d(False, "held_out"),
                                 "D_held_out_corrected": d(True, "held_out"), "D_estimation": d(False, "estimation"),
                                 "D_estimation_corrected": d(True, "estimation")})
        print_table(["layer", "rounding", "bits", "D held-out", "corrected", "D in-sample", "corrected"],
                    [[s["layer"], s["rounding"], s["bits"], s["D_held_out"], s["D_held_out_corrected"], s["D_estimation"],
                      s["D_estimation_corrected"]] for s in summ], title="bias correction, mean D over groups")
        result["bias"] = {"summary": summ, "rows": rows}
    if "split" in parts:
        rows, storage = split_rows(model, G, args.calib, args.steps)
        print_table(["layer", "split", "bits", "D one range", "D split"],
                    [[r["layer"], r["split_channel"], r["bits"], r["D_one_range"], r["D_split"]] for r in rows],
                    title="A-curves of concatenated inputs, mean D over groups (in-sample, as profiled)")
        result["split_concat"] = {"rows": rows, "storage": storage,
                                  "sum_D": {str(b): {"one_range": sum(r["D_one_range"] for r in rows if r["bits"] == b),
                                                     "split": sum(r["D_split"] for r in rows if r["bits"] == b)}
                                            for b in (4, 6)}}
    if "timing" in parts:
        result["timing"] = timing(model, G, args.calib, args.steps)
        print(result["timing"])
    write_result(NAME, result, args.out, EXPERIMENT_RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
