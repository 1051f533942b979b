"""A range per sampling step: does it buy back what 8-bit activations cost at W4A8?

    python -m experiments.step_ranges               # -> experiments/results/step_ranges.json
    python -m experiments.step_ranges --quick       # 64 samples, 25 steps

dadq sets each activation range per timestep group, and a group spans several sampling steps. With weights at
full precision, ranges fitted per step (``experiments.activation_cost``) lowered the 8-bit activations' FID gap
on one seed. This takes the W4A8 allocation of the headline's lowest row (DADQ exact, budget over the mean of the
groups, x_t at full precision, groups weighted by the trajectory gain^0.5, over --profile, by default the
32-sample profile) and samples it with the profile's ranges per group, and with every per-tensor range replaced
by one per sampling step: the min/max of that layer's input at that step over N FP trajectories of calibration
seed 0, for N = 32, 64, 128; on sampling seed --seed (default 1), FP beside them.
"""
from __future__ import annotations

from benchmarks.common import EXPERIMENT_RESULTS, command_line, machine_facts, print_table, sampling_experiment, write_result

NAME = "step_ranges"
PROFILE = "assets/default/profile.safetensors"
BITS = 8  # activation bits
TRAJECTORIES = (32, 64, 128)  # FP calibration trajectories the per-step ranges come from


def calibrated_step_ranges(steps: int, clip: bool, n: int = 32, seed: int = 0):
    """An adjust(q, prof) that gives every per-tensor range of ``q`` one range per sampling step instead of per
    group: each layer's input at each of the DDIM-``steps`` timesteps, on ``n`` FP trajectories of calibration seed
    ``seed`` (not the FID seed), its min/max (clip False) or ``activation_range`` at 8 bits (clip True)."""
    import dataclasses

    import torch
    import dadq
    from dadq.quant import activation_range

    def adjust(q, prof):
        unet = q.unet.fp_unet
        layers = {name: ql for name, ql in q.unet.layers.items() if not ql.a_token}
        ranges, now = {}, {}
        hooks = [unet.register_forward_pre_hook(lambda m, a: now.__setitem__("t", int(a[1].reshape(-1)[0])))]

        def record(name):
            def hook(m, a):
                x = a[0].detach()
                ranges[(now["t"], name)] = (activation_range(x, BITS) if clip else
                                            (float(x.min()), float(x.max())))
            return hook
        hooks += [unet.get_submodule(name).register_forward_pre_hook(record(name)) for name in layers]
        try:
            dadq.sample(dataclasses.replace(q, unet=unet), n=n, steps=steps, seed=seed, batch_size=n, progress=False)
        finally:
            for h in hooks:
                h.remove()
        step = {}
        q.unet.register_forward_pre_hook(lambda m, a: step.__setitem__("t", int(torch.as_tensor(a[1]).reshape(-1)[0])))
        for name, ql in layers.items():
            def quantize_input(x, b, g, name=name, ql=ql):
                return ql.quantize_input_with(x, b, ranges[(step["t"], name)], None)
            ql.quantize_input = quantize_input

    adjust.__name__ = f"calibrated_step_ranges_{'clip' if clip else 'minmax'}_n{n}"
    return adjust


def main(argv=None) -> int:
    import dadq
    from dadq.metrics import dataset_reference
    from dadq.models import shipped_file
    from dadq.trajectory import GAIN_FILE, load_gain
    from experiments.report import HEADLINE_GAIN_POWER as GAIN_POWER
    from experiments.sweep import SAMPLE_BATCH, config_allocation

    args, model, prof = sampling_experiment(__doc__, argv, n=1000, seed=1, quick_n=64, profile=PROFILE)
    gain, _ = load_gain(shipped_file("default", GAIN_FILE), prof.groups, model)
    alloc = config_allocation(dadq, "w4a", BITS, "exact", prof,
                              {"scope": "mean", "fp_input": True, "gain_power": GAIN_POWER}, gain)
    ref = dataset_reference("mnist")

    def fid(m, label):
        x = dadq.sample(m, n=args.n, steps=args.steps, seed=args.seed, batch_size=SAMPLE_BATCH, desc=label[:40])
        return dadq.fid(x, reference=ref)

    fp = fid(model, "FP")
    rows = [{"row": "FP", "seed": args.seed, "fid": fp}]
    variants = [("ranges per group (the profile's)", None)] + [
        (f"a range per step, min/max over {k} trajectories", calibrated_step_ranges(args.steps, clip=False, n=k))
        for k in TRAJECTORIES]
    for label, adjust in variants:
        q = dadq.quantize(model, prof, alloc)
        if adjust is not None:
            adjust(q, prof)
        rows.append({"row": label, "seed": args.seed, "fid": fid(q, label)})
        rows[-1]["x_fp"] = rows[-1]["fid"] / fp
    print_table(["row", "seed", "FID", "x FP"], [[r["row"], r["seed"], r["fid"], r.get("x_fp", 1.0)] for r in rows],
                title=f"W4A8: {args.n} samples, DDIM-{args.steps}")
    setup = {"n": args.n, "steps": args.steps, "seeds": [args.seed], "bits": BITS, "gain_power": GAIN_POWER,
             "trajectories": list(TRAJECTORIES), "profile": args.profile, "profile_settings": prof.settings(),
             "fingerprint": prof.fingerprint}
    write_result(NAME, {"benchmark": NAME, "command": command_line(NAME, "experiments"), "machine": machine_facts(),
                        "setup": setup, "rows": rows}, args.out, EXPERIMENT_RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
