"""Quantize time: how long ``dadq.quantize`` takes over each profile, which is what the app's first Generate after it
loads a model and profile waits for on top of sampling (GPTQ weights and bias corrections are rebuilt from the
profile's calibration inputs, so a profile with more calibration samples takes longer; later allocations reuse them).

    python -m benchmarks.quantize_speed --threads 1
    python -m benchmarks.quantize_speed --quick      # 1 repeat

Each profile's allocation is W 4, DADQ exact, budget over the mean of the groups. The profiles alternate ``--repeats``
times in rotating order; the reported ratio is the median over repeats of (profile time / the first profile's time in
the same round), so a noisy shared machine moves both alike.
"""
from __future__ import annotations

import argparse

import dadq
from benchmarks.common import (add_common_args, command_line, interleaved, load_model, loadavg, machine_facts, median,
                               paired_ratios, print_table, setup_threads, shown_path, write_result)

NAME = "quantize_speed"
# the baseline first: the 16-sample profile issue 18's grids ran over, then the shipped one
PROFILES = ("calib16=experiments/results/profiles/gptq_act/default_gptqact_bc_calib16.safetensors,"
            "shipped=assets/default/profile.safetensors")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, "1 repeat")
    p.add_argument("--profiles", default=PROFILES, help="NAME=PATH,...; ratios are against the first")
    p.add_argument("--repeats", type=int, default=None, help="rounds over all profiles (default 3)")
    args = p.parse_args(argv)
    threads = setup_threads(args.threads)
    repeats = args.repeats or (1 if args.quick else 3)
    load0 = loadavg()
    model = load_model("default")
    paths, profiles, allocs = {}, {}, {}
    for item in args.profiles.split(","):
        name, _, path = item.partition("=")
        if not name or not path:
            raise SystemExit(f"--profiles: {item!r} is not NAME=PATH.")
        paths[name], profiles[name] = shown_path(path), dadq.Profile.load(path)
        allocs[name] = dadq.allocate(profiles[name], budget=4.0, target="w", method="exact", budget_scope="mean")
    times = interleaved({k: (lambda k=k: dadq.quantize(model, profiles[k], allocs[k])) for k in profiles}, repeats)
    first = next(iter(profiles))
    rows = {k: {"path": paths[k], "calib_per_group": p.meta.get("calib_per_group"), "rounding": p.meta.get("rounding"),
                "seconds": times[k], "median_s": median(times[k]),
                "ratio_to_first": median(paired_ratios(times[k], times[first]))} for k, p in profiles.items()}
    print_table(["profile", "calibration samples / group", "median s", f"÷ {first}"],
                [[k, r["calib_per_group"], f"{r['median_s']:.1f}", f"{r['ratio_to_first']:.2f}"]
                 for k, r in rows.items()], title=f"dadq.quantize, W 4 exact, {repeats} interleaved repeats")
    write_result(NAME, {"benchmark": NAME, "command": command_line(NAME), "quick": args.quick,
                        "machine": machine_facts(), "torch_threads": threads, "loadavg_start": load0,
                        "loadavg_end": loadavg(), "repeats": repeats, "allocation": "W 4, exact, budget_scope=mean",
                        "first": first, "profiles": rows}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
