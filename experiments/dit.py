"""Evidence on the shipped class-conditional DiT (issue 20): DADQ against uniform bits, the groups
ablation, per-token activation ranges, and which layer types get the bits.

    python -m experiments.dit                 # -> experiments/results/dit.json (+ a markdown table on stdout)
    python -m experiments.dit --quick         # n=20, DDIM-10: a smoke run

Profiles (fast mode, bits 2-8, 4 calibration samples per group, guided calibration at the model's default
scale, as assets/dit/profile.safetensors): G = 10 per tensor (the shipped profile where it matches the
weights), G = 1 and G = 2 per tensor, G = 10 per token (``act_granularity="token"``), all round to nearest;
G = 10 per tensor with GPTQ rounding and bias correction (the strong quantizer of issue 18); kept in
experiments/results/profiles/ and reused while the weights match.
Settings: W4 (weights only, A FP), W4A8 (separate budgets), W+A 6 and W+A 4 (one joint budget).
Methods: DADQ = the Lagrangian allocation; uniform = every quantizer at the widest width that fits (per-tensor
ranges per group); each over RTN curves and over GPTQ + bias-corrected ones. Each quantized model samples n images from the FP run's noise, labels (0-9
cycled) and guidance; scores: paired SSIM against FP, and class accuracy = the share of samples that the
project's MNIST classifier (dadq.metrics.classify) labels as the requested class.
Layer types: patch embedding (pos_embed.proj), timestep embedding (the MLP that feeds adaLN), adaLN
(each block's norm1.linear), attention (to_q/k/v/out), MLP (ff), final layer (proj_out_1 adaLN + proj_out_2).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common import EXPERIMENT_RESULTS, command_line, machine_facts, setup_threads, shown_path, write_result

NAME = "dit"
SETTINGS = {  # name -> allocate kwargs
    "W4": dict(target="w", budget=4.0),
    "W4A8": dict(target="wa", w_budget=4.0, a_budget=8.0),
    "W+A6": dict(target="wa", budget=6.0),
    "W+A4": dict(target="wa", budget=4.0),
}
# (G, activation granularity, weight rounding); G = 10 per tensor RTN last: the shipped profile may still be being
# built by scripts.train_dit --profile
PROFILES = [(10, "token", "rtn"), (1, "tensor", "rtn"), (2, "tensor", "rtn"), (10, "tensor", "gptq"),
            (10, "tensor", "rtn")]
LAYER_TYPES = ("patch embedding", "timestep embedding", "adaLN", "attention", "MLP", "final layer")


def profile_key(key: tuple) -> str:
    """'G10_tensor', 'G10_tensor_gptq_bc': a profile's name in the result."""
    return f"G{key[0]}_{key[1]}" + ("_gptq_bc" if key[2] == "gptq" else "")


def layer_type(name: str) -> str:
    """The DiT part a quantizer belongs to (one of LAYER_TYPES)."""
    if name.startswith("pos_embed"):
        return "patch embedding"
    if "timestep_embedder" in name:
        return "timestep embedding"
    if name.endswith("norm1.linear"):
        return "adaLN"
    if ".attn" in name:
        return "attention"
    if ".ff." in name:
        return "MLP"
    if name.startswith("proj_out"):
        return "final layer"
    raise ValueError(f"{name}: not a DiTTransformer2DModel quantizer this experiment knows")


def get_profile(model, groups: int, granularity: str, folder: Path, shipped: Path | None, calib: int,
                wait_s: float = 0.0, rounding: str = "rtn"):
    """The profile of ``model`` at G groups, this granularity and weight rounding ('gptq' comes with bias
    correction): loaded if a stored one matches, else built. wait_s: wait up to this long for the shipped
    profile to match the model (being built beside this run)."""
    import dadq

    gptq = rounding == "gptq"
    path = folder / f"dit_g{groups}_{granularity}{'_gptq_bc' if gptq else ''}.safetensors"
    shipped = shipped if not gptq else None
    if shipped and groups == 10 and granularity == "tensor" and wait_s > 0:
        deadline = time.time() + wait_s
        while time.time() < deadline:
            if shipped.exists() and dadq.Profile.load(shipped).fingerprint == model.fingerprint():
                break
            print("waiting for the shipped profile ...", flush=True)
            time.sleep(30)
    for cand in ([shipped] if shipped and groups == 10 and granularity == "tensor" else []) + [path]:
        if cand.exists():
            prof = dadq.Profile.load(cand)
            if (prof.fingerprint == model.fingerprint() and prof.num_groups == groups
                    and prof.meta.get("act_granularity", "tensor") == granularity
                    and int(prof.calib_x.shape[1]) == calib and prof.meta.get("mode") == "fast"
                    and prof.settings()["rounding"] == rounding and prof.settings()["bias_correction"] == gptq):
                print(f"profile G={groups} {granularity}: {cand}", flush=True)
                return prof, shown_path(cand)
    t0 = time.time()
    prof = dadq.profile(model, groups=groups, bits=range(2, 9), calib_per_group=calib, mode="fast",
                        act_granularity=granularity, rounding=rounding, bias_correction=gptq)
    prof.save(path)
    print(f"profile G={groups} {granularity} {rounding}: built in {time.time() - t0:.0f} s -> {path}", flush=True)
    return prof, shown_path(path)


def bits_by_type(profile, alloc) -> dict:
    """Mean W and A bits per layer type (element-weighted over the type's quantizers, mean over groups);
    only the allocation's target kinds (A of a weights-only allocation stays FP and is left out)."""
    types = np.array([layer_type(n) for n in alloc.layer_names])
    out = {}
    for t in LAYER_TYPES:
        sel = types == t
        row = {"quantizers": int(sel.sum())}
        for kind, bits, numel in (("w", alloc.w_bits, alloc.w_numel), ("a", alloc.a_bits, alloc.a_numel)):
            if alloc.target in ("wa", kind):
                row[f"{kind}_bits"] = round(float((bits[:, sel] * numel[sel]).sum(1).mean() / numel[sel].sum()), 3)
        out[t] = row
    return out


def a_curves_by_type(per_tensor, per_token, bits=(4, 6)) -> dict:
    """D of the A-curves summed per layer type (mean over groups), per tensor vs per token, and the
    quantizers whose A-curve per token is lower."""
    out = {}
    types = np.array([layer_type(n) for n in per_tensor.layer_names])
    assert per_tensor.layer_names == per_token.layer_names
    for b in bits:
        m = int(np.flatnonzero(per_tensor.bits == b)[0])
        dt, dk = per_tensor.d_a[:, :, m].mean(0), per_token.d_a[:, :, m].mean(0)
        measured = bool(per_tensor.measured[m])
        rows = {}
        for t in LAYER_TYPES:
            sel = types == t
            rows[t] = {"per_tensor": float(dt[sel].sum()), "per_token": float(dk[sel].sum()),
                       "ratio": float(dk[sel].sum() / max(dt[sel].sum(), 1e-30)),
                       "lower_per_token": int((dk[sel] < dt[sel]).sum()), "quantizers": int(sel.sum())}
        rows["all"] = {"per_tensor": float(dt.sum()), "per_token": float(dk.sum()),
                       "ratio": float(dk.sum() / max(dt.sum(), 1e-30)),
                       "lower_per_token": int((dk < dt).sum()), "quantizers": int(len(dt))}
        out[f"{b}"] = {"measured": measured, "types": rows}
    return out


def main(argv=None) -> int:
    import dadq
    from dadq.metrics import classify, paired_psnr_ssim

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="dit")
    p.add_argument("--n", type=int, default=100, help="samples per chain (labels 0-9 cycled)")
    p.add_argument("--steps", type=int, default=20, help="DDIM steps")
    p.add_argument("--calib", type=int, default=4, help="calibration samples per group of the profiles")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="n=20, DDIM-10")
    p.add_argument("--out", default=None)
    p.add_argument("--table", action="store_true",
                   help="no run: write the markdown tables of the stored result to experiments/results/dit.md")
    p.add_argument("--wait-shipped", type=float, default=0.0,
                   help="seconds to wait for the model's shipped profile (built beside this run) before building one")
    p.add_argument("--profiles", default=str(EXPERIMENT_RESULTS / "profiles"), help="folder of the stored profiles")
    args = p.parse_args(argv)
    if args.table:
        import json

        from dadq.io import write_text

        text = markdown(json.loads((EXPERIMENT_RESULTS / f"{NAME}.json").read_text()))
        write_text(EXPERIMENT_RESULTS / f"{NAME}.md", text + "\n")
        print(text)
        return 0
    if args.quick:
        args.n, args.steps = 20, 10
    setup_threads(args.threads)
    t_start = time.time()
    model = dadq.load_model(args.model)
    folder = Path(args.profiles)
    folder.mkdir(parents=True, exist_ok=True)
    from dadq.models import default_profile_path

    shipped = default_profile_path(args.model)
    if shipped is None and args.model in ("dit",):
        from dadq.models import NAMED_MODELS

        shipped = NAMED_MODELS[args.model] / "profile.safetensors"  # not there yet: scripts.train_dit --profile writes it
    profiles, sources = {}, {}
    for key in PROFILES:
        profiles[key], sources[profile_key(key)] = get_profile(model, key[0], key[1], folder, shipped, args.calib,
                                                               args.wait_shipped, rounding=key[2])

    labels = np.arange(args.n) % 10
    kw = dict(n=args.n, steps=args.steps, seed=0, class_labels=labels, progress=False)
    t0 = time.time()
    fp = dadq.sample(model, **kw)
    fp_pred, _ = classify(fp)
    fp_row = {"accuracy": float((fp_pred == labels).mean()), "seconds": round(time.time() - t0, 1)}
    print(f"FP: accuracy {fp_row['accuracy']:.3f} ({fp_row['seconds']} s)", flush=True)

    runs = [("DADQ", "lagrangian", (10, "tensor", "rtn")), ("uniform", "uniform", (10, "tensor", "rtn")),
            ("DADQ GPTQ+bias", "lagrangian", (10, "tensor", "gptq")),
            ("uniform GPTQ+bias", "uniform", (10, "tensor", "gptq")),
            ("DADQ per-token", "lagrangian", (10, "token", "rtn")), ("DADQ G=1", "lagrangian", (1, "tensor", "rtn")),
            ("DADQ G=2", "lagrangian", (2, "tensor", "rtn"))]
    rows, types = [], {}
    for setting, akw in SETTINGS.items():
        for label, method, key in runs:
            if key[1] == "token" and akw["target"] == "w":
                continue  # weights only: the activation granularity does not enter
            prof = profiles[key]
            try:
                alloc = dadq.allocate(prof, method=method, **akw)
            except ValueError as e:  # a budget this profile cannot meet (per-token range bits): say so
                rows.append(dict(setting=setting, method=label, groups=key[0], granularity=key[1], error=str(e)))
                print(f"{setting} {label}: {e}", flush=True)
                continue
            t0 = time.time()
            q = dadq.sample(dadq.quantize(model, prof, alloc), **kw)
            _, ssim = paired_psnr_ssim(fp, q)
            pred, _ = classify(q)
            kinds = ["w", "a"] if akw["target"] == "wa" else [akw["target"]]
            numel = sum(float(getattr(prof, f"{k}_numel").sum()) for k in kinds)
            # bits per element as the solver counts them (per-token range parameters included), mean over groups
            chosen = {"w": alloc.w_bits, "a": alloc.a_bits}
            size = 0.0
            for k in kinds:
                b = chosen[k]
                size += float((b * getattr(prof, f"{k}_numel")[None]).sum(1).mean())
                if k == "a":
                    size += float(((b < 32) * prof.a_overhead_bits[None]).sum(1).mean())
            row = dict(setting=setting, method=label, groups=key[0], granularity=key[1], rounding=key[2],
                       avg_bits=round(size / numel, 3), ssim=round(float(ssim.mean()), 4),
                       accuracy=round(float((pred == labels).mean()), 3),
                       agree_with_fp=round(float((pred == fp_pred).mean()), 3),
                       predicted_d=round(float(alloc.predicted.mean()), 5), seconds=round(time.time() - t0, 1))
            rows.append(row)
            print(row, flush=True)
            if label in ("DADQ", "DADQ per-token"):
                types[f"{setting} {label}"] = bits_by_type(prof, alloc)

    result = {
        "experiment": NAME, "command": command_line(NAME, "experiments"),
        "model": args.model, "fingerprint": model.fingerprint(), "guidance_scale": model.guidance_scale,
        "prediction_type": model.prediction_type,
        "n": args.n, "sampler": f"DDIM-{args.steps}, eta 0, seed 0, labels 0-9 cycled", "profiles": sources,
        "profile_settings": {"mode": "fast", "bits": "2-8", "calib_per_group": args.calib,
                             "seconds": {profile_key(k): profiles[k].meta.get("seconds") for k in profiles}},
        "fp": fp_row, "rows": rows, "bits_by_type": types,
        "a_curves_by_type": a_curves_by_type(profiles[(10, "tensor", "rtn")], profiles[(10, "token", "rtn")]),
        "token_overhead_bits_per_element": {
            t: round(float(profiles[(10, "token", "rtn")].a_overhead_bits[[layer_type(n) == t for n in profiles[(10, "token", "rtn")].layer_names]].sum()
                           / profiles[(10, "token", "rtn")].a_numel[[layer_type(n) == t for n in profiles[(10, "token", "rtn")].layer_names]].sum()), 4)
            for t in LAYER_TYPES},
        "seconds": round(time.time() - t_start, 1), "machine": machine_facts(),
    }
    write_result(NAME, result, args.out, EXPERIMENT_RESULTS)
    print(markdown(result))
    return 0


def markdown(r: dict) -> str:
    """The result as markdown tables (what docs/results.md can show)."""
    lines = [f"DiT ({r['model']}, {r['prediction_type']}, guidance {r['guidance_scale']}): n = {r['n']} samples per "
             f"chain, {r['sampler']}; FP class accuracy {r['fp']['accuracy']:.3f}.", "",
             "| setting | method | G | avg bits | SSIM vs FP | class accuracy | same class as FP |",
             "|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        if "error" in row:
            lines.append(f"| {row['setting']} | {row['method']} | {row['groups']} | infeasible | | | |")
            continue
        lines.append(f"| {row['setting']} | {row['method']} | {row['groups']} | {row['avg_bits']:.2f} | "
                     f"{row['ssim']:.4f} | {row['accuracy']:.3f} | {row['agree_with_fp']:.3f} |")
    lines += ["", "Mean bits per layer type (DADQ, G = 10; W / A, element-weighted, mean over groups):", "",
              "| allocation | " + " | ".join(LAYER_TYPES) + " |", "|---|" + "---|" * len(LAYER_TYPES)]
    for key, per in r["bits_by_type"].items():
        cells = []
        for t in LAYER_TYPES:
            v = per[t]
            cells.append(" / ".join(f"{v[k]:.2f}" for k in ("w_bits", "a_bits") if k in v))
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    lines += ["", "A-curves per layer type, D summed over the type's quantizers (mean over groups), per tensor -> "
              "per token:", "", "| bits | " + " | ".join(LAYER_TYPES) + " | all |", "|---|" + "---|" * (len(LAYER_TYPES) + 1)]
    for b, v in r["a_curves_by_type"].items():
        cells = [f"{v['types'][t]['per_tensor']:.3g} -> {v['types'][t]['per_token']:.3g} "
                 f"({v['types'][t]['lower_per_token']}/{v['types'][t]['quantizers']} lower)"
                 for t in LAYER_TYPES + ("all",)]
        lines.append(f"| {b}{'' if v['measured'] else ' (filled)'} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    return text


if __name__ == "__main__":
    raise SystemExit(main())
