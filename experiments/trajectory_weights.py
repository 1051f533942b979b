"""Weighting each timestep group's D by how far the sampler carries its error: does FID follow?

    python -m experiments.trajectory_weights --threads 1   # -> experiments/results/trajectory_weights.json

The profile's D is one step's eps distortion; the budget scope 'mean' adds it over groups as if an error
cost the same at every step. ``dadq.trajectory_gain`` measures, per group, the final sample's MSE per unit
of eps MSE added at that group's steps alone (Gaussian error, DDIM, same noise). This experiment measures
the gains on the default model, then allocates W4A8 (exact, scope mean, the shipped profile or --profile)
with the groups' D weighted by gain^p for p = 0 (the profile as is), 1/2 and 1, and scores each by FID
(MNIST-classifier features) and paired SSIM against FP from the same noise and sampler.
"""
from __future__ import annotations

import argparse


from dadq.trajectory import GAIN_SETTINGS
from benchmarks.common import (EXPERIMENT_RESULTS, add_common_args, command_line, get_profile, load_model, machine_facts,
                               print_table, setup_threads, write_result)

NAME = "trajectory_weights"
POWERS = (0.0, 0.5, 1.0)


def main(argv=None) -> int:
    import dadq

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, "256 samples, 25 steps")
    p.add_argument("--n", type=int, default=1000, help="samples per FID row")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps, of the FID rows and of the gain")
    p.add_argument("--seeds", type=int, nargs="+", default=[1], help="sampling seeds of the FID rows")
    p.add_argument("--gain-n", type=int, default=GAIN_SETTINGS["n"], help="samples of the trajectory gain")
    p.add_argument("--sigma", type=float, default=GAIN_SETTINGS["sigma"], help="standard deviation of the eps error the gain adds")
    p.add_argument("--profile", default=None, help="profile file (default: the shipped one)")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.steps, args.gain_n = 256, 25, 16
    setup_threads(args.threads)
    model = load_model("default")
    prof = get_profile(model, "default", args.profile)
    gain = dadq.trajectory_gain(model, prof.groups, n=args.gain_n, steps=args.steps, sigma=args.sigma)
    print_table(["group", "timesteps", "gain (final MSE per eps MSE)"],
                [[g, lab, float(v)] for g, (lab, v) in enumerate(zip(prof.groups.labels(), gain))],
                title=f"trajectory gain, {args.gain_n} samples, DDIM-{args.steps}")
    rows = []
    for seed in args.seeds:
        fp = dadq.sample(model, n=args.n, steps=args.steps, seed=seed, desc=f"FP seed {seed}", batch_size=250)
        fp_fid = dadq.fid(fp)
        for power in POWERS:
            a = dadq.allocate(prof, w_budget=4, a_budget=8, method="exact", budget_scope="mean",
                              group_weights=None if power == 0 else gain ** power)
            q = dadq.quantize(model, prof, a)
            x = dadq.sample(q, n=args.n, steps=args.steps, seed=seed, desc=f"gain^{power:g} seed {seed}", batch_size=250)
            _, ssim = dadq.paired_psnr_ssim(fp, x)
            w_avg = a.step_bits()[0] / a.w_numel.sum()  # [G] average weight bits per group
            rows.append({"power": power, "seed": seed, "fid": dadq.fid(x), "fp_fid": fp_fid,
                         "paired_ssim_mean": float(ssim.mean()), "w_avg_bits_per_group": w_avg.tolist(),
                         "w_avg_bits": float(w_avg.mean()), "predicted_D": float(a.predicted.mean())})
    print_table(["weights", "seed", "FID", "FP FID", "paired SSIM", "W bits per group (group 0 ... G-1)"],
                [["none" if r["power"] == 0 else f"gain^{r['power']:g}", r["seed"], r["fid"], r["fp_fid"],
                  r["paired_ssim_mean"], " ".join(f"{b:.2f}" for b in r["w_avg_bits_per_group"])] for r in rows],
                title=f"W4A8 exact, scope mean, {args.n} samples, DDIM-{args.steps}")
    write_result(NAME, {"benchmark": NAME, "command": command_line(NAME, "experiments"), "machine": machine_facts(),
                        "setup": {"n": args.n, "steps": args.steps, "seeds": args.seeds, "gain_n": args.gain_n,
                                  "gain_sigma": args.sigma, "profile_settings": prof.settings(),
                                  "fingerprint": prof.fingerprint},
                        "gain": gain.tolist(), "group_labels": prof.groups.labels(), "rows": rows},
                   args.out, EXPERIMENT_RESULTS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
