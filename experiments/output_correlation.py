"""Is there a systematic part of the quantized model's eps error that an output-level correction could remove?

    python -m experiments.output_correlation            # -> experiments/results/output_correlation.json
    python -m experiments.output_correlation --quick    # 4 trajectories per set, 64 FID samples

PTQD (He et al. 2023) splits a quantized noise prediction into a part correlated with the FP one and a
residual, eps_q = (1 + k) eps + r, and divides by (1 + k) at sampling time. Simpler output corrections
subtract a mean shift of eps_q - eps per timestep group: per channel, or per channel and pixel. Each is
fitted per group on one set of calibration trajectories and scored on another (held out), for DADQ
allocations of the profile (the shipped one unless --profile names one). A share near zero means that
correction has nothing to remove: the error is input-dependent, not a scale or an offset.
Then, in images: FID of one setting (W 4) with and without the correction that removes the most, beside
FP from the same sampler and seed.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from benchmarks.common import (EXPERIMENT_RESULTS, add_common_args, command_line, get_profile, load_model, machine_facts,
                               print_table, setup_threads, write_result)
from experiments.sweep import SAMPLE_BATCH

NAME = "output_correlation"
CORRECTIONS = ("scale k (PTQD)", "channel mean", "channel and pixel mean")
FID_SETTING = "W 4"  # the setting sampled with and without the channel-and-pixel mean correction


def _settings(dadq, prof):
    """(label, allocation): DADQ exact with the budget as the mean over groups, x_t at FP where activations
    are quantized: the headline DADQ rows."""
    mean = dict(method="exact", budget_scope="mean")
    yield "W 4", dadq.allocate(prof, budget=4, target="w", **mean)
    yield "W 3", dadq.allocate(prof, budget=3, target="w", **mean)
    yield "W4A8, x_t at FP", dadq.allocate(prof, w_budget=4, a_budget=8, fp_input=True, **mean)
    yield "W+A 6, x_t at FP", dadq.allocate(prof, budget=6, target="wa", fp_input=True, **mean)


@torch.no_grad()
def eps_pairs(model, qmodel, x: torch.Tensor, t: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """FP eps and the error eps_q - eps (float64 [N, C, H, W]) of one group's calibration inputs x [N, C, H, W], t [N]."""
    eps = model.unet(x, t).sample
    err = qmodel.unet(x, t).sample - eps
    return eps.double().cpu().numpy(), err.double().cpu().numpy()


def fit(eps: np.ndarray, err: np.ndarray) -> dict:
    """The three corrections fitted on one group's eps and error [N, C, H, W]: k (scalar), the mean error
    per channel [C] and per channel and pixel [C, H, W]."""
    return {"k": float((err * eps).sum() / (eps * eps).sum()), "channel": err.mean((0, 2, 3)), "pixel": err.mean(0)}


def corrected_mse(eps: np.ndarray, err: np.ndarray, c: dict) -> list[float]:
    """Held-out eps MSE after each correction, in CORRECTIONS order. PTQD divides eps_q by (1 + k)."""
    eq = eps + err
    return [float(np.mean((eq / (1 + c["k"]) - eps) ** 2)),
            float(np.mean((err - c["channel"][None, :, None, None]) ** 2)),
            float(np.mean((err - c["pixel"][None]) ** 2))]


def subtract_output_bias(qmodel, bias: torch.Tensor) -> None:
    """Make ``qmodel`` subtract bias[g] [C, H, W] from its eps at the steps of timestep group g (in place)."""
    qunet = qmodel.unet

    def hook(module, args, output):
        t = torch.as_tensor(args[1]).expand(args[0].shape[0])
        output.sample = output.sample - bias.to(output.sample)[qunet.groups.group_of(t)]
        return output

    qunet.register_forward_hook(hook)


def fid_rows(dadq, model, qmodel, bias: torch.Tensor, n: int, steps: int, seed: int) -> list[dict]:
    """FID (n samples, DDIM-steps, seed) of FP, of ``qmodel`` and of ``qmodel`` with ``bias`` subtracted (the last
    row adds the correction to ``qmodel`` in place)."""
    from dadq.metrics import dataset_reference

    ref = dataset_reference("mnist")
    rows = []
    for label, m in (("FP", model), ("quantized", qmodel), ("quantized, channel and pixel mean subtracted", qmodel)):
        if "subtracted" in label:
            subtract_output_bias(m, bias)
        x = dadq.sample(m, n=n, steps=steps, seed=seed, batch_size=SAMPLE_BATCH, desc=f"FID: {label}"[:40])
        rows.append({"row": label, "fid": dadq.fid(x, reference=ref)})
    return rows


def main(argv=None) -> int:
    import dadq
    from dadq.calibrate import calibration_inputs

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, "4 trajectories per set")
    p.add_argument("--n", type=int, default=32, help="calibration trajectories per set (fit, held out)")
    p.add_argument("--seeds", default="11,12", help="the fitting set's seed and the held-out set's")
    p.add_argument("--profile", default=None, help="profile file (default: the shipped one)")
    p.add_argument("--fid-n", type=int, default=1000, help="FID samples per row (0: no FID rows)")
    p.add_argument("--fid-steps", type=int, default=50)
    p.add_argument("--fid-seed", type=int, default=1)
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.fid_n = 4, 64
    setup_threads(args.threads)
    fit_seed, test_seed = (int(s) for s in args.seeds.split(","))
    model = load_model("default")
    prof = get_profile(model, "default", args.profile)
    sets = {s: calibration_inputs(model, prof.groups, args.n, seed=s) for s in (fit_seed, test_seed)}
    rows, fid = [], []
    for label, alloc in _settings(dadq, prof):
        q = dadq.quantize(model, prof, alloc)
        pixel_bias = []
        for g in range(prof.num_groups):
            (ef, df), (et, dt) = (eps_pairs(model, q, x[g], t[g]) for x, t in (sets[fit_seed], sets[test_seed]))
            c = fit(ef, df)
            pixel_bias.append(torch.from_numpy(c["pixel"]).float())
            mse = float(np.mean(dt ** 2))
            after = corrected_mse(et, dt, c)
            t_g = sets[test_seed][1][g]
            rows.append({"setting": label, "group": g, "timesteps": [int(t_g.min()), int(t_g.max())],
                         "eps_mse": mse, "k": c["k"],
                         "removed": {name: 1 - a / mse for name, a in zip(CORRECTIONS, after)}})
        if label == FID_SETTING and args.fid_n:
            fid = fid_rows(dadq, model, q, torch.stack(pixel_bias), args.fid_n, args.fid_steps, args.fid_seed)
    print_table(["setting", "group", "eps MSE", "k", *CORRECTIONS],
                [[r["setting"], r["group"], r["eps_mse"], r["k"], *r["removed"].values()] for r in rows],
                title=f"share of the held-out eps MSE each correction removes ({args.n} trajectories per set)")
    if fid:
        print_table(["row", "FID"], [[r["row"], r["fid"]] for r in fid],
                    title=f"{FID_SETTING}: {args.fid_n} samples, DDIM-{args.fid_steps}, seed {args.fid_seed}")
    write_result(NAME, {"benchmark": NAME, "command": command_line(NAME, "experiments"), "machine": machine_facts(),
                        "setup": {"n": args.n, "fit_seed": fit_seed, "test_seed": test_seed, "groups": prof.num_groups,
                                  "profile_settings": prof.settings(), "fingerprint": prof.fingerprint,
                                  "fid_setting": FID_SETTING, "fid_n": args.fid_n, "fid_steps": args.fid_steps,
                                  "fid_seed": args.fid_seed},
                        "corrections": list(CORRECTIONS), "rows": rows, "fid": fid}, args.out, EXPERIMENT_RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
