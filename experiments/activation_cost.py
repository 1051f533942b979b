"""Where 8-bit activations lose FID: in which half of the trajectory, and through the timestep embedding?

    python -m experiments.activation_cost            # -> experiments/results/activation_cost.json
    python -m experiments.activation_cost --quick    # 64 samples, 25 steps

Weights stay at full precision; every layer's input is quantized to 8 bits (uniform, per-tensor ranges per
group from the profile), the model input x_t kept at full precision (``fp_input``), as in the W4A8 rows. The
model is sampled with those activations quantized in every group, only in the low-noise half, only in the
high-noise half, in every group but with the timestep-embedding path (``time_layers``) at full precision, in every
group with every range at the calibration min/max (no clipping, ``minmax_ranges``), in every group with every
input channel scaled to the same calibration max (``channel_scales``), and in every group but with the layers the
profile prices highest at 8 bits in the high-noise half (``sensitive_layers``) at full precision, with ranges set at
run time (each sample's own min/max, ``sample_ranges``; the batch's min/max at each step, ``step_ranges``), with a
range per sampling step from FP calibration trajectories (``experiments.step_ranges.calibrated_step_ranges``), and
with each bias corrected for the mean output shift of the activation error (``activation_bias``); FP from the same
sampler and seed beside them. Rows of an earlier run of the same setup are reused (``previous_rows``). At W4A8 the
activations cost FID that the profile's per-step D does not show (docs/results.md, "Candidate bits up to 10"); this
asks where it goes.
"""
from __future__ import annotations

from benchmarks.common import (EXPERIMENT_RESULTS, command_line, machine_facts, print_table, result_path,
                               sampling_experiment, write_result)
from experiments.group_halves import fid_rows, halves, previous_rows
from experiments.step_ranges import calibrated_step_ranges
from experiments.sweep import SAMPLE_BATCH

NAME = "activation_cost"
BITS = 8  # activation bits of every quantized input
SENSITIVE = 2  # layers at full precision in the sensitive-layers row


def time_layers(names: list[str]) -> tuple[str, ...]:
    """The layers that read the timestep embedding: its MLP and every ResNet's projection of it."""
    return tuple(n for n in names if n.startswith("time_embedding.") or n.endswith(".time_emb_proj"))


def sensitive_layers(prof, bits: int = BITS, count: int = SENSITIVE) -> tuple[str, ...]:
    """The ``count`` layers with the largest activation D at ``bits`` summed over the high-noise half of the groups
    (the layers that read the model input aside: it stays at full precision), largest first."""
    import numpy as np
    from dadq.models import INPUT_LAYERS

    m = list(prof.bits).index(bits)
    d = prof.d_a[prof.num_groups // 2:, :, m].sum(0)
    order = [li for li in np.argsort(-d) if prof.layer_names[li] not in INPUT_LAYERS]
    return tuple(prof.layer_names[li] for li in order[:count])


def minmax_ranges(q, prof) -> None:
    """Every activation range of ``q`` set to its layer's calibration min/max per group (``Profile.act_minmax``):
    no clipping of what the calibration saw."""
    for li, name in enumerate(prof.layer_names):
        q.unet.layers[name].a_range = [tuple(float(v) for v in prof.act_minmax[g, li]) for g in range(prof.num_groups)]


def channel_scales(q, prof, bits: int = BITS) -> None:
    """Every quantized input of ``q`` divided per channel by that channel's calibration max |x| (pooled over the
    groups) before its per-tensor quantization, and multiplied back after. Folded into the next layer's weights
    this is SmoothQuant's migration with alpha 1; with full-precision weights it is exact, so the row bounds what
    per-channel activation scales can buy. The range per group: ``activation_range`` on the scaled calibration inputs."""
    import torch
    from dadq.calibrate import layer_inputs
    from dadq.quant import activation_range, fake_quant_activation

    layers = q.unet.layers
    inputs = layer_inputs(q.unet.fp_unet, list(layers), torch.as_tensor(prof.calib_x), torch.as_tensor(prof.calib_t))
    for name, ql in layers.items():
        per_group = inputs[name]
        d = 1 if ql.is_conv else per_group[0].ndim - 1  # the channel dimension
        dims = [i for i in range(per_group[0].ndim) if i != d]
        shape = [1] * per_group[0].ndim
        shape[d] = -1
        scale = torch.stack([x.abs().amax(dim=dims) for x in per_group]).amax(0).clamp_min(1e-8).view(shape)
        ranges = [activation_range(x / scale, bits) for x in per_group]

        def quantize_input(x, b, g, scale=scale, ranges=ranges):
            lo, hi = ranges[g]
            return fake_quant_activation(x / scale, lo, hi, b) * scale
        ql.quantize_input = quantize_input


def sample_ranges(q, prof, per_sample: bool = True) -> None:
    """Every per-tensor range of ``q`` replaced at run time by each sample's own min/max of that input (dynamic
    per-tensor quantization; per-token layers keep their per-token ranges): what a range fitted to the sample
    itself, not to the calibration set, buys. per_sample False: the min/max over the whole batch at that step."""
    from dadq.quant import fake_quant_tokens

    for ql in q.unet.layers.values():
        if ql.a_token:
            continue

        def quantize_input(x, b, g):  # one "token" per sample (or one for the batch): its whole min/max, no clip
            return fake_quant_tokens(x, 1.0, b, elements=x[0].numel() if per_sample else x.numel())
        ql.quantize_input = quantize_input


def step_ranges(q, prof) -> None:
    """Every per-tensor range of ``q`` set at run time to the min/max of that input over the batch at each step
    (``sample_ranges`` over the batch): a range per sampling step rather than per group."""
    sample_ranges(q, prof, per_sample=False)


def activation_bias(q, prof, bits: int = BITS) -> None:
    """Every quantized layer's bias in group g corrected by the mean output shift its 8-bit input causes,
    E[op(Q(x) - x)] over g's calibration inputs, per output channel: bias correction for the activation error
    (the weights are at full precision here)."""
    import torch
    from dadq.bitwidths import is_fp
    from dadq.calibrate import layer_inputs

    layers = q.unet.layers
    inputs = layer_inputs(q.unet.fp_unet, list(layers), torch.as_tensor(prof.calib_x), torch.as_tensor(prof.calib_t))
    for name, ql in layers.items():
        shifts = []
        for g, x in enumerate(inputs[name]):
            with torch.no_grad():
                d = ql.op(ql.quantize_input(x, bits, g) - x, ql.weight, None)
            shifts.append(d.mean(dim=[0, 2, 3]) if ql.is_conv else d.reshape(-1, d.shape[-1]).mean(0))
        base = ql.bias.detach() if ql.bias is not None else 0.0

        def quantized_bias(b, g, shifts=shifts, base=base, ql=ql):
            return ql.bias if is_fp(ql.a_bits[g]) else base - shifts[g]
        ql.quantized_bias = quantized_bias


def main(argv=None) -> int:
    import dadq

    args, model, prof = sampling_experiment(__doc__, argv, n=1000, seed=1, quick_n=64)
    alloc = dadq.allocate(prof, budget=BITS, target="a", method="uniform", fp_input=True)
    G = prof.num_groups
    fp_time = time_layers(prof.layer_names)
    sensitive = sensitive_layers(prof)
    every = list(range(G))
    setup = {"n": args.n, "steps": args.steps, "seed": args.seed, "groups": G, "bits": BITS,
             "time_layers": list(fp_time), "sensitive_layers": list(sensitive), "profile_settings": prof.settings(),
             "fingerprint": prof.fingerprint}
    rows = fid_rows(dadq, model, prof, alloc, args,
                    halves(G) + [("every group, timestep embedding at FP", every, fp_time),
                                 ("every group, ranges at the calibration min/max", every, (), minmax_ranges),
                                 ("every group, every input channel scaled to the same calibration max", every, (),
                                  channel_scales),
                                 (f"every group, {' and '.join(sensitive)} at FP", every, sensitive),
                                 ("every group, each sample's own min/max per tensor", every, (), sample_ranges),
                                 ("every group, bias corrected for the activation error", every, (),
                                  activation_bias),
                                 (f"every group, each step's min/max per tensor over its batch of {SAMPLE_BATCH}",
                                  every, (), step_ranges),
                                 ("every group, a range per step: calibration min/max", every, (),
                                  calibrated_step_ranges(args.steps, clip=False)),
                                 ("every group, a range per step: calibration, clip search", every, (),
                                  calibrated_step_ranges(args.steps, clip=True))],
                    previous=previous_rows(result_path(NAME, args.out, EXPERIMENT_RESULTS), setup))
    print_table(["row", "FID"], [[r["row"], r["fid"]] for r in rows],
                title=f"A {BITS}, weights FP, x_t FP: {args.n} samples, DDIM-{args.steps}, seed {args.seed}")
    write_result(NAME, {"benchmark": NAME, "command": command_line(NAME, "experiments"), "machine": machine_facts(),
                        "setup": setup, "rows": rows}, args.out, EXPERIMENT_RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
