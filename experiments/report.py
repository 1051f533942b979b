"""Markdown tables of a sweep result, so the README's evidence numbers are generated, not typed.

    python -m experiments.report sweep_fashion                 # print the tables of sweep_fashion.json
    python -m experiments.report sweep sweep_fashion --readme README.md   # rewrite their README blocks
    python -m experiments.report --readme README.md --check    # fail if a README block is stale

A README block sits between ``<!-- report NAME -->`` and ``<!-- /report -->``; ``--readme`` with no
names rewrites every block it finds. Tables: paired SSIM per budget and method, FID per seed with
mean ± std over seeds and the ratio to FP of the same seeds, the groups ablation (paired SSIM and FID),
additivity, and the bits the 4-bit allocation gives the first and last layers.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

from benchmarks.common import EXPERIMENT_RESULTS as RESULTS

BLOCK = re.compile(r"(<!-- report (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /report -->)", re.S)
TARGET_LABEL = {"w": "W", "wa": "W+A", "w4a": "W 4 + A"}


def _table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _f(x, nd=3) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def ssim_table(cells: list[dict], methods: list[str]) -> str:
    """Paired SSIM (bits used) per grid budget and method, per-group weights."""
    rows = []
    budgets = list(dict.fromkeys((c["target"], c["budget"]) for c in cells if c["weight_mode"] == "per-group"))
    for target, budget in budgets:
        by_m = {c["method"]: c for c in cells
                if (c["target"], c["budget"], c["weight_mode"]) == (target, budget, "per-group") and "error" not in c}
        rows.append([f"{TARGET_LABEL[target]} {budget:g}"]
                    + [f"{by_m[m]['paired_ssim_mean']:.3f} ({by_m[m]['avg_bits_used']:.2f})" if m in by_m else "–"
                       for m in methods])
    return _table(["budget (avg bits)"] + [f"{m}: SSIM (bits used)" for m in methods], rows)


def shared_table(cells: list[dict]) -> str:
    """Shared against per-group weights at the same budget and method: paired SSIM and stored size."""
    rows = []
    for c in cells:
        if c["weight_mode"] != "shared":
            continue
        pg = next((p for p in cells if (p["target"], p["budget"], p["method"], p["weight_mode"])
                   == (c["target"], c["budget"], c["method"], "per-group")), None)
        uni = next((p for p in cells if (p["target"], p["budget"], p["method"], p["weight_mode"])
                    == (c["target"], c["budget"], "uniform", "per-group")), None)
        rows.append([f"{TARGET_LABEL[c['target']]} {c['budget']:g} {c['method']}",
                     f"{c['paired_ssim_mean']:.3f} ({c['stored_weight_MB']:.2f} MB)",
                     f"{pg['paired_ssim_mean']:.3f} ({pg['stored_weight_MB']:.2f} MB)" if pg else "–",
                     f"{uni['paired_ssim_mean']:.3f} ({uni['stored_weight_MB']:.2f} MB)" if uni else "–"])
    return _table(["cell", "shared weights: SSIM (stored)", "per-group weights", "uniform, per-group"], rows)


def fid_table(fid: list[dict], seeds: list[int]) -> str:
    """FID per seed, mean ± std over the seeds done, and mean over the FP FID of the same seeds."""
    fp = {r["seed"]: r["fid"] for r in fid if r["row"] == "FP"}
    rows = []
    for label in dict.fromkeys(r["row"] for r in fid):
        sel = {r["seed"]: r["fid"] for r in fid if r["row"] == label}
        v = np.array(list(sel.values()))
        spread = f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v.mean():.2f} (1 seed)"
        ratio = "–" if label == "FP" else f"{v.mean() / np.mean([fp[s] for s in sel]):.2f}×"
        rows.append([label] + [f"{sel[s]:.2f}" if s in sel else "–" for s in seeds] + [spread, ratio])
    return _table(["row"] + [f"seed {s}" for s in seeds] + ["mean ± std", "÷ FP (same seeds)"], rows)


def groups_fid(fid: list[dict]) -> tuple[list[int], dict[int, list[float]]]:
    """FID of exact at W+A 4 bits per G (rows 'WA 4 exact G=...'), on the seeds every such G has:
    (seeds, {G: [FID per seed]}). FP FID moves by half between seeds at 1k samples, so G is compared
    only on common seeds."""
    per_G: dict[int, dict[int, float]] = {}
    for r in fid:
        if r["row"].startswith("WA 4 exact G="):
            per_G.setdefault(int(r["row"].split("G=")[1]), {})[r["seed"]] = r["fid"]
    seeds = sorted(set.intersection(*(set(f) for f in per_G.values()))) if per_G else []
    return seeds, {G: [f[s] for s in seeds] for G, f in per_G.items()}


def ablation_table(ab_rows: list[dict], fid: list[dict]) -> str:
    """Paired SSIM per G, budget and method; FID of exact at W+A 4 per G where measured."""
    Gs = sorted({r["G"] for r in ab_rows})
    cols = list(dict.fromkeys((r["budget"], r["method"]) for r in ab_rows))
    seeds, fid_by_G = groups_fid(fid)
    rows = []
    for G in Gs:
        by = {(r["budget"], r["method"]): r["paired_ssim_mean"] for r in ab_rows if r["G"] == G}
        f = fid_by_G.get(G)
        rows.append([f"G={G}"] + [_f(by.get(c)) for c in cols] + [f"{np.mean(f):.2f}" if f else "–"])
    head = f"W+A 4 exact: FID, mean over seed{'s' if len(seeds) != 1 else ''} {', '.join(map(str, seeds))}"
    return _table(["groups"] + [f"W+A {b:g} {m}: SSIM" for b, m in cols] + [head if seeds else "W+A 4 exact: FID"], rows)


def ends_line(h: dict) -> str:
    """Mean bits of the first and last three layers of the 4-bit exact allocation, against all layers."""
    w, a = np.array(h["mean_w_bits_per_layer"]), np.array(h["mean_a_bits_per_layer"])
    j = lambda v: " / ".join(f"{x:.1f}" for x in v)  # noqa: E731
    return (f"W+A 4 exact allocation: weight bits {w.mean():.2f} on average over {len(w)} layers; first three "
            f"layers {j(w[:3])}, last three {j(w[-3:])}. Activation bits {a.mean():.2f} on average; first three "
            f"{j(a[:3])}, last three {j(a[-3:])}.")


def render(result: dict) -> str:
    """The markdown of one sweep result (all parts it holds)."""
    s = result["setup"]
    # --max-minutes only time-boxes a slice: the same command without it gives the same numbers
    command = re.sub(r" --max-minutes [\d.e-]+", "", result["command"])
    out = [f"`{command}` → `benchmarks/results/{result['benchmark']}.json`"
           + ("" if result.get("complete") else f" (**partial**: stopped before {result['stopped_before']})"
              if "stopped_before" in result else " (**partial**: still running, or interrupted)")]
    cells = result.get("cells") or []
    if cells:
        p = s["paired"]
        out += ["", f"Paired SSIM, {p['n']} samples at {p['sampler']}, per-group weights, G={s['profile_groups']}:", "",
                ssim_table(cells, s["methods"])]
        if any(c["weight_mode"] == "shared" for c in cells):
            out += ["", "Shared weights (one copy for all groups) against per-group:", "", shared_table(cells)]
    fid = result.get("fid") or []
    if fid:
        seeds = sorted({r["seed"] for r in fid})
        f0 = fid[0]
        features = f0["label"].removeprefix("FID").strip(" ()")
        out += ["", f"FID, {f0['n']} samples at {f0['sampler']} ({features}), against the "
                f"{s.get('fid_reference', 'reference')}:", "", fid_table(fid, seeds)]
    ab = result.get("groups_ablation")
    if ab:
        prof = next(iter(ab["profiles"].values()))
        out += ["", f"Groups ablation ({prof['mode']} profiles, {prof['calib_per_group']} calibration samples per "
                    f"group; 'uniform' keeps per-group activation ranges for G>1):", "", ablation_table(ab["rows"], fid)]
    a = (result.get("additivity") or {}).get("all")
    if a and a["cells"]:
        out += ["", f"Additivity over {a['cells']} distinct allocations: Pearson {a['pearson']:.3f} "
                    f"(log-log {a['pearson_log']:.3f}); measured/predicted median "
                    f"{a['median_ratio_measured_over_predicted']:.2f} (range {a['min_ratio']:.2f}–{a['max_ratio']:.2f})."]
    if "heatmap_wa4_exact" in result:
        out += ["", ends_line(result["heatmap_wa4_exact"])]
    return "\n".join(out) + "\n"


def load(name: str) -> dict:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        raise SystemExit(f"no result {path}; run `python -m experiments.sweep --name {name}` first")
    return json.loads(path.read_text())


def update_readme(text: str, names: list[str] | None) -> str:
    """``text`` with every report block (or only those of ``names``) regenerated from its result."""
    def sub(m):
        if names and m["name"] not in names:
            return m.group(0)
        return m.group(1) + render(load(m["name"])) + m.group(4)
    return BLOCK.sub(sub, text)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="result names in benchmarks/results (e.g. sweep sweep_fashion)")
    p.add_argument("--readme", default=None, help="rewrite the report blocks of this markdown file")
    p.add_argument("--check", action="store_true", help="with --readme: exit 1 if a block differs, write nothing")
    args = p.parse_args(argv)
    if args.readme is None:
        if not args.names:
            p.error("name a result, or give --readme")
        for n in args.names:
            print(render(load(n)))
        return 0
    path = Path(args.readme)
    text = path.read_text()
    new = update_readme(text, args.names)
    if args.check:
        if new != text:
            stale = [m["name"] for m, k in zip(BLOCK.finditer(text), BLOCK.finditer(new)) if m.group(0) != k.group(0)]
            print(f"{path}: report blocks out of date: {', '.join(stale)}; run "
                  f"`python -m experiments.report --readme {path}`", file=sys.stderr)
            return 1
        return 0
    if new != text:
        from dadq.io import write_text
        write_text(path, new)
    print(f"{path}: {len(BLOCK.findall(text))} report block(s) up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
