"""Why some weight RD curves are not monotone: the mean shift that weight rounding adds to a layer's output.

    python -m experiments.bias_shift                     # conv_out, shipped profile -> results/bias_shift.json
    python -m experiments.bias_shift --layers conv_out,conv_in

For each named layer, timestep group and bit width, with only that layer's weights quantized:
  D            output distortion (dadq.distortion) on the profile's calibration inputs
  shift/std    mean |per-channel mean| of the layer's output error over the error's std: how much of
               the error is a constant offset per output channel rather than noise
  D corrected  D with that per-channel mean folded into the bias (classic bias correction). The mean
               comes from the same calibration inputs it is scored on, so this is an in-sample bound
               of what a bias correction could give, not a quantizer dadq ships.
Also counts, over the whole shipped profile, the weight-curve steps where one more bit gives more D.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmarks.common import (EXPERIMENT_RESULTS, add_common_args, command_line, get_profile, load_model, machine_facts, print_table,
                               setup_threads, write_result)

NAME = "bias_shift"


def non_monotone_steps(d: np.ndarray, names: list[str], bits: np.ndarray) -> dict:
    """Steps b -> b+1 with D(b+1) > D(b) in curves d [G, L, M]: count, and the layers that have them."""
    up = d[..., 1:] > d[..., :-1]
    per_layer = up.sum(axis=(0, 2))
    worst = np.argsort(-per_layer)[:8]
    return {"steps_up": int(up.sum()), "steps_total": int(up.size),
            "layers_with_steps_up": int((per_layer > 0).sum()), "layers_total": len(names),
            "worst_layers": {names[i]: int(per_layer[i]) for i in worst if per_layer[i] > 0},
            "steps_up_by_width": {f"{bits[m]}->{bits[m + 1]}": int(up[..., m].sum()) for m in range(len(bits) - 1)}}


@torch.no_grad()
def layer_rows(model, prof, layer: str) -> list[dict]:
    from dadq.distortion import distortion
    from dadq.quant import FP_BITS, QuantizedUNet

    qunet = QuantizedUNet(model.unet, prof.groups, [layer]).eval()
    ql = qunet.layers[layer]
    if ql.bias is None:
        raise SystemExit(f"{layer} has no bias to fold a correction into; pick a layer with one.")
    seen = {}
    hook = ql.register_forward_pre_hook(lambda mod, args: seen.__setitem__("a", args[0]))
    bias0 = ql.bias.detach().clone()
    rows = []
    try:
        for g in range(prof.num_groups):
            x = torch.from_numpy(prof.calib_x[g]).to(model.device)
            t = torch.from_numpy(prof.calib_t[g]).to(model.device)
            ql.w_bits[g] = FP_BITS
            eps_fp = qunet(x, t).sample
            a = seen["a"]
            y = ql.op(a, ql.weight, None)
            dims = tuple(i for i in range(y.ndim) if i != 1)
            for b in prof.bits.tolist():
                ql.w_bits[g] = b
                dy = ql.op(a, ql.quantized_weight(b), None) - y
                shift = dy.mean(dims)
                d = distortion(eps_fp, qunet(x, t).sample)
                ql.bias.sub_(shift)
                try:
                    d_corr = distortion(eps_fp, qunet(x, t).sample)
                finally:
                    ql.bias.copy_(bias0)
                rows.append({"layer": layer, "group": g, "bits": b, "D": d, "D_corrected": d_corr,
                             "shift_over_std": float(shift.abs().mean() / dy.std().clamp_min(1e-12))})
            ql.w_bits[g] = FP_BITS
    finally:
        hook.remove()
        ql.bias.copy_(bias0)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, "the same (it is small)")
    p.add_argument("--model", default="default")
    p.add_argument("--profile", default=None, help="profile file (default: the shipped one)")
    p.add_argument("--layers", default="conv_out", help="comma-separated layer names")
    args = p.parse_args(argv)
    setup_threads(args.threads)
    model = load_model(args.model)
    prof = get_profile(model, args.model, args.profile)
    prof.check_model(model)
    layers = [s.strip() for s in args.layers.split(",") if s.strip()]
    unknown = [n for n in layers if n not in prof.layer_names]
    if unknown:
        raise SystemExit(f"--layers: {unknown} are not in the profile; names look like {prof.layer_names[:3]}.")
    rows = [r for n in layers for r in layer_rows(model, prof, n)]
    mono = non_monotone_steps(prof.d_w, prof.layer_names, prof.bits)
    summary = []
    for n in layers:
        for b in prof.bits.tolist():
            sel = [r for r in rows if r["layer"] == n and r["bits"] == b]
            summary.append({"layer": n, "bits": b, "D_mean": float(np.mean([r["D"] for r in sel])),
                            "D_corrected_mean": float(np.mean([r["D_corrected"] for r in sel])),
                            "shift_over_std_mean": float(np.mean([r["shift_over_std"] for r in sel]))})
    print_table(["layer", "bits", "D (mean over groups)", "D, mean shift folded into bias", "shift / std"],
                [[s["layer"], s["bits"], s["D_mean"], s["D_corrected_mean"], s["shift_over_std_mean"]] for s in summary],
                title="weights of one layer quantized, all else FP; shipped profile's calibration inputs")
    print(f"\nweight curves, whole profile: {mono['steps_up']} of {mono['steps_total']} steps b -> b+1 raise D, "
          f"in {mono['layers_with_steps_up']} of {mono['layers_total']} layers; by width {mono['steps_up_by_width']}")
    write_result(NAME, {"benchmark": NAME, "command": command_line(NAME, "experiments"), "machine": machine_facts(),
                        "setup": {"model": args.model, "fingerprint": prof.fingerprint, "layers": layers,
                                  "calib_per_group": prof.meta.get("calib_per_group"), "groups": prof.num_groups},
                        "summary": summary, "rows": rows, "non_monotone_weight_curves": mono}, args.out, EXPERIMENT_RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
