"""The generated tables of docs/results.md and the README's headline tables, written from the result files.

    python -m experiments.report                  # rewrite every generated block of docs/results.md and README.md
    python -m experiments.report --check          # exit 1, naming the stale blocks, if one no longer matches its file
    python -m experiments.report sweep_fashion    # print the markdown of one block
    python -m experiments.report --doc FILE       # only FILE's blocks (repeatable)

A generated block sits between ``<!-- report NAME -->`` and ``<!-- /report -->``. NAME is a sweep result in
experiments/results/ (its tables: paired SSIM per budget and method, FID per seed with mean ± std and the
ratio to FP of the same seeds, shared weights, the groups ablation, additivity, the bits at the ends of
the network), or one of the summaries in ``BLOCKS`` (speed benchmarks from benchmarks/results/, the
embedded models' quality cards, cross-result comparisons). The prose around the blocks is written by
hand and quotes only what they show.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Callable

import numpy as np

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "experiments" / "results"  # evidence sweeps
BENCH_RESULTS = REPO / "benchmarks" / "results"  # speed benchmarks
DOCS = [REPO / "docs" / "results.md", REPO / "README.md"]  # the files with generated blocks
REGENERATE = "python -m experiments.report"
APP_BENCH = "python -m benchmarks.app_bench"  # app.json records no command

BLOCK = re.compile(r"(<!-- report (?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /report -->)", re.S)
TARGET_LABEL = {"w": "W", "wa": "W+A", "w4a": "W 4 + A"}
OK = {True: "✔", False: "✘"}


def _table(headers: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _f(x, nd=3) -> str:
    return "–" if x is None else f"{x:.{nd}f}"


def _pct(x: float) -> str:
    """A relative gap as percent: 1 decimal from 1%, 2 from 0.1%, else 1 significant digit."""
    v = 100.0 * x
    if abs(v) >= 1:
        return f"{v:.1f}%"
    if abs(v) >= 0.1:
        return f"{v:.2f}%"
    return f"{v:.1g}%"


def _goal(text: str) -> str:
    """A target as the result files write it ('<= 1.3') in the tables' notation ('≤ 1.3')."""
    return text.replace("<=", "≤").replace(">=", "≥")


def _cmd(command: str) -> str:
    """The command that made a result, without what does not change its numbers (time boxes, notes)."""
    command = re.sub(r" --max-minutes [\d.e-]+", "", command)
    command = re.sub(r" --note .*$", "", command)
    command = re.sub(r" --out /tmp/\S+", "", command)  # a scratch copy, moved into results/ after the run
    # the repository's script folders are packages, run from the root with -m (no import-path edits)
    return re.sub(r"\bpython3? (scripts|benchmarks|training|experiments)/(\w+)\.py\b", r"python -m \1.\2", command)


def _load(path: Path) -> dict:
    if not path.exists():
        raise SystemExit(f"no result {path.relative_to(REPO)}; run the command that makes it first "
                         f"(docs/results.md names it)")
    return json.loads(path.read_text())


def load(name: str) -> dict:
    """A sweep result of experiments/results/ by name."""
    return _load(RESULTS / f"{name}.json")


def bench(name: str) -> dict:
    """A speed benchmark result of benchmarks/results/ by name."""
    return _load(BENCH_RESULTS / f"{name}.json")


# --- sweep results -------------------------------------------------------------------------------

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


def _over_fp(by: dict[int, float], fp: dict[int, float]) -> float:
    """A row's mean FID over its seeds (``by``: {seed: FID}) over the mean FP FID of the same seeds."""
    return float(np.mean(list(by.values())) / np.mean([fp[s] for s in by]))


def fid_table(fid: list[dict], seeds: list[int]) -> str:
    """FID per seed, mean ± std over the seeds done, and mean over the FP FID of the same seeds."""
    fp = {r["seed"]: r["fid"] for r in fid if r["row"] == "FP"}
    rows = []
    for label in dict.fromkeys(r["row"] for r in fid):
        sel = {r["seed"]: r["fid"] for r in fid if r["row"] == label}
        v = np.array(list(sel.values()))
        spread = f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v.mean():.2f} (1 seed)"
        ratio = "–" if label == "FP" else f"{_over_fp(sel, fp):.2f}×"
        rows.append([label] + [f"{sel[s]:.2f}" if s in sel else "–" for s in seeds] + [spread, ratio])
    return _table(["row"] + [f"seed {s}" for s in seeds] + ["mean ± std", "÷ FP (same seeds)"], rows)


def groups_fid(fid: list[dict]) -> tuple[list[int], dict[int, list[float]]]:
    """FID of exact at W+A 4 bits per G (rows 'WA 4 exact G=...'), on the seeds every such G has:
    (seeds, {G: [FID per seed]}). FP FID moves by half between seeds at 1k samples, so G is compared
    only on common seeds."""
    per_G: dict[int, dict[int, float]] = {}
    for r in fid:
        m = re.fullmatch(r"WA 4 exact G=(\d+)", r["row"])  # rows with options (' gptq', ...) are other questions
        if m:
            per_G.setdefault(int(m.group(1)), {})[r["seed"]] = r["fid"]
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
    out = [f"`{_cmd(result['command'])}` → `experiments/results/{result['benchmark']}.json`"
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


# --- comparisons across sweep results --------------------------------------------------------------

def _fid_rows(result: dict, seed: int | None = None) -> dict[str, dict[int, float]]:
    """{row label: {seed: FID}} of a sweep result (one seed only if given)."""
    out: dict[str, dict[int, float]] = {}
    for r in result.get("fid") or []:
        if seed is None or r["seed"] == seed:
            out.setdefault(r["row"], {})[r["seed"]] = r["fid"]
    return out


HEADLINE_ROWS = [("W 4", "W 4"), ("W+A 4", "WA 4"), ("W+A 6", "WA 6")]


def headline_rows(key: str) -> tuple[str, str]:
    """The 5k row labels (DADQ, strong uniform) the headline shows for a setting key of ROUNDING_SETTINGS: both with
    the shipped profile (GPTQ in activation order + bias, 32 calibration samples per group), x_t at FP where
    activations are quantized."""
    tail = "" if key.startswith("W ") else FP_INPUT  # weights-only rows quantize no activation
    return tuple(f"{key} {label.replace(' gptq', ' ' + SHIPPED_PROFILE)}{tail}" for label in (DADQ_GPTQ[1], STRONG_UNIFORM[1]))


# the --profiles name of the shipped profile in the sweeps that set other recipes beside it
SHIPPED_PROFILE = "c32"
# the profile issue 18's grids ran over, shipped while they ran (``act``: 16 calibration samples per group); the grids'
# blocks show its rows, the variants' block the others'
GRID_PROFILE = "act"
# the recipes of the profiles GPTQ in activation order, by --profiles name: what each one's calibration is (all with bias
# correction, candidate bits 2-8 and the symmetric weight grid unless named), and the profile each is compared with
# (``profile_against``), which differs from it in one setting
PROFILE_RECIPES = {"act": "16 calibration samples per group",
                   "grp": "one Hessian per group (`gptq-act-group`), 16 calibration samples per group",
                   "c32": "32 calibration samples per group",
                   "c64": "64 calibration samples per group",
                   "b10": "32 calibration samples per group, candidate bits 2–10",
                   "asym": "32 calibration samples per group, asymmetric weight grid",
                   "c32s7": "32 calibration samples per group, calibration seed 7",
                   "ho": "32 calibration samples per group, asymmetric weight grid, curves measured on a held-out draw "
                         "(calibration seed 7)",
                   "c32sp": "32 calibration samples per group, one activation range per part of a concatenated input",
                   "b1": "32 calibration samples per group, asymmetric weight grid, curves measured on a held-out draw "
                         "(calibration seed 7), candidate bits 1–8",
                   "c32ps": "32 calibration samples per group, activation ranges per sample at run time",
                   "b110": "32 calibration samples per group, one activation range per part of a concatenated input, "
                           "candidate bits 1–10",
                   "b110ps": "32 calibration samples per group, activation ranges per sample at run time, candidate bits "
                             "1–10",
                   "clip": "32 calibration samples per group, activation ranges per sample at run time, each weight "
                           "channel's clip ratio by output error after GPTQ (`gptq-act-clip`)"}
PROFILE_BASES = {"grp": "act", "c32": "act", "c64": "c32", "b10": "c32", "asym": "c32", "c32s7": "c32", "ho": "asym",
                 "c32sp": "c32", "b1": "ho", "c32ps": "c32sp", "b110": "c32sp", "b110ps": "c32ps",
                 # a weights-only row compares against c32: c32ps and c32 round the same weights (summed weight D 1.00x)
                 "clip": ("c32ps", "c32")}


GRID_PROFILE_TEXT = f"the act-order profile with {PROFILE_RECIPES[GRID_PROFILE]} (`{GRID_PROFILE}`)"


def recipe(name: str) -> str:
    """A profile's recipe (PROFILE_RECIPES), marked where it is the shipped one."""
    return PROFILE_RECIPES[name] + (" (shipped)" if name == SHIPPED_PROFILE else "")


# the group weights the headline also shows DADQ with: each group's D times its trajectory gain ** this (the sweep's
# gainP option), the power chosen at 1k samples (group_weight_powers)
HEADLINE_GAIN_POWER = 0.5


def headline() -> str:
    """The README's headline: 5k-sample FIDs of DADQ against the strong uniform baseline (first and last layers at 8
    bits), both with the shipped profile's quantizer, × FP, per setting of issue 18 (– where not run yet); DADQ
    with the groups weighted by the trajectory gain ** HEADLINE_GAIN_POWER; and the lowest DADQ row of that setting
    over the shipped profile's variants (PROFILE_RECIPES), named, where one was run."""
    name = "sweep_rounding_5k"
    rows = _first_seed(name)[1]
    fp = rows["FP"]
    # a row this CPU did not sample, from the GPU's seed 1 (its FP there is the CPU's within 0.1%), marked
    gpu = {k: dict(x, on_gpu=True) for k, x in _first_seed(GPU_5K)[1].items()}

    def cell(x):
        where = ", GPU" if x and x.get("on_gpu") else ""
        where += f", {x['profile_note']}" if x and x.get("profile_note") else ""
        return f"{x['fid']:.2f} ({x['fid'] / fp['fid']:.2f}× FP{where})" if x else "not run yet"

    def strongest_uniform(label):
        """The lower of the uniform rows over the shipped profile and over the 16-sample one: the baseline DADQ
        must beat is the strongest, and more calibration samples do not lower uniform bits' FID."""
        grid = rows.get(label.replace(f" {SHIPPED_PROFILE} ", f" {GRID_PROFILE} "))
        found = [x for x in (rows.get(label) or gpu.get(label), grid and dict(grid, profile_note="16-sample profile")) if x]
        return min(found, key=lambda x: x["fid"], default=None)

    def meets(x, goal):
        return f"{cell(x)} {OK[x['fid'] / fp['fid'] <= goal]}" if x else "–"

    gain = f" gain^{HEADLINE_GAIN_POWER:g}"
    table = []
    for key, _, tname, goal in ROUNDING_SETTINGS:
        d, u = rows.get(headline_rows(key)[0]), strongest_uniform(headline_rows(key)[1])
        w = rows.get(headline_rows(key)[0] + gain)
        best = _lowest_variant(rows, headline_rows(key)[0], gain)
        table.append([tname + ("" if key.startswith("W ") else ", x_t at FP"), cell(d), cell(u),
                      f"{1 - d['fid'] / u['fid']:.0%}" if d and u else "–", f"≤ {goal:g}×",
                      OK[d["fid"] / fp["fid"] <= goal] if d else "–", meets(w, goal),
                      "–" if best is None else f"{meets(best[0], goal)}, {PROFILE_RECIPES[best[1]]}"
                      + (f", gain^{HEADLINE_GAIN_POWER:g}" if best[2] else "")])
    return (_table(["average bits", "dadq", "uniform bits, first/last layers 8 (the lower over either profile)",
                    "dadq lower by", "target",
                    "dadq meets it", f"dadq, groups weighted by gain^{HEADLINE_GAIN_POWER:g}",
                    "dadq, lowest over a profile variant"], table)
            + f"\n\nFID with MNIST-classifier features (not Inception), {fp['n']:,} samples, {fp['sampler']}, seed 1, on "
              f"the embedded MNIST model; FP {fp['fid']:.2f} (`experiments/results/{name}.json`). Both sides use "
              "GPTQ in activation order with bias correction: DADQ over the shipped profile (32 calibration samples per "
              "group), its exact allocation bounding the mean over timestep groups; uniform bits over the shipped profile "
              "or over the same recipe with 16 calibration samples per group, whichever is lower (marked where the "
              "16-sample one is): the strongest baseline run. Where activations are quantized, both keep the model input x_t at "
              "full precision, outside the budget (`fp_input`). The column after the targets weights each group's "
              f"distortion by its trajectory gain to the power {HEADLINE_GAIN_POWER:g} (`allocate(..., group_weights=…)`), "
              "a power chosen on 1k samples (seeds 1–3). The last column is the lowest of the rows run at 5k over a "
              "variant of the shipped profile's recipe (every such row is in results, \"Calibration variants at 5k\", and "
              "the 16-sample `act` rows in its 5k grid), "
              "named, with the gain's power where it is named; – where none was run. A cell marked GPU was sampled on a lent "
              f"GPU (`experiments/results/{GPU_5K}.json`, seed 1), not on this CPU.\n")


def _lowest_variant(rows: dict, label: str, gain: str) -> tuple[dict, str, bool] | None:
    """(row, profile name, weighted) of the lowest-FID row of ``label`` (a row over the shipped profile) over one of
    its variants (PROFILE_RECIPES), unweighted or with the ``gain`` suffix; None where none was run."""
    found = []
    for v in PROFILE_RECIPES:
        if v == SHIPPED_PROFILE:
            continue
        other = label.replace(f" {SHIPPED_PROFILE} ", f" {v} ")
        found += [(rows[lab], v, weighted) for lab, weighted in ((other, False), (other + gain, True)) if lab in rows]
    return min(found, key=lambda t: t[0]["fid"], default=None)


def fid_5k_vs_1k() -> str:
    """Seed-1 FID at 1k samples (sweep.json) and at 5k (sweep_fid5k.json), the ratios to FP, uniform ÷ exact."""
    k1 = {k: v[1] for k, v in _fid_rows(load("sweep"), seed=1).items()}
    k5 = {k: v[1] for k, v in _fid_rows(load("sweep_fid5k"), seed=1).items()}
    rows = [["FP", f"{k1['FP']:.2f}", f"{k5['FP']:.2f}", f"{k5['FP'] / k1['FP']:.2f}", "–", "–", "–"]]
    for label, key in HEADLINE_ROWS:
        for method in ("exact", "uniform"):
            row = f"{key} {method} G=10"
            a, b = k1[row], k5[row]
            vs = f"{b / k5[f'{key} exact G=10']:.1f}×" if method == "uniform" else "–"
            rows.append([f"{label} {method}", f"{a:.2f}", f"{b:.2f}", f"{b / a:.2f}",
                         f"{a / k1['FP']:.2f}×", f"{b / k5['FP']:.2f}×", vs])
    return _table(["row (seed 1, DDIM-50)", "FID 1k", "FID 5k", "5k ÷ 1k", "÷ FP at 1k", "÷ FP at 5k",
                   "uniform ÷ exact at 5k"], rows) + "\n"


def exact_vs_lagrangian() -> str:
    """FID of exact and lagrangian over the seeds of both full runs: the gain of solving exactly."""
    rows = []
    for name, model in (("sweep", "MNIST"), ("sweep_fashion", "Fashion-MNIST")):
        f = _fid_rows(load(name))
        for label, key in HEADLINE_ROWS:
            ex, lg = f[f"{key} exact G=10"], f[f"{key} lagrangian G=10"]
            seeds = sorted(set(ex) & set(lg))
            me, ml = np.mean([ex[s] for s in seeds]), np.mean([lg[s] for s in seeds])
            ahead = sum(ex[s] < lg[s] for s in seeds)
            rows.append([model, label, f"{me:.2f}", f"{ml:.2f}", f"{100 * (ml / me - 1):+.1f}%",
                         f"{ahead} of {len(seeds)}"])
    return _table(["model", "budget", "exact: FID (mean)", "lagrangian: FID (mean)", "lagrangian ÷ exact − 1",
                   "seeds where exact is lower"], rows) + "\n"


def bias_shift() -> str:
    """conv_out's weight distortion with and without its mean output shift folded into the bias."""
    r = load("bias_shift")
    rows = [[str(s["bits"]), f"{s['D_mean']:.3g}", f"{s['D_corrected_mean']:.2g}", f"{s['shift_over_std_mean']:.2f}"]
            for s in r["summary"] if s["layer"] == "conv_out"]
    nm = r["non_monotone_weight_curves"]
    return (f"`{_cmd(r['command'])}` → `experiments/results/bias_shift.json` (model fingerprint "
            f"{r['setup']['fingerprint']})\n\n"
            + _table(["conv_out weight bits", "D, mean over groups", "D with the shift in the bias",
                      "output shift ÷ error spread"], rows)
            + f"\n\nAcross that profile, {nm['steps_up']} of {nm['steps_total']} weight-curve steps b → b+1 raise D, "
              f"in {nm['layers_with_steps_up']} of {nm['layers_total']} layers.\n")


def split_concat() -> str:
    """One activation range per concatenated part against one for the whole input (up blocks' A-curves)."""
    r = load("rounding_ablation_split")
    rows_in = r["split_concat"]["rows"]
    rows = []
    for b in sorted({x["bits"] for x in rows_in}):
        sel = [x for x in rows_in if x["bits"] == b]
        one, split = sum(x["D_one_range"] for x in sel), sum(x["D_split"] for x in sel)
        lower = sum(x["D_split"] < x["D_one_range"] for x in sel)
        rows.append([f"{b}", f"{len(sel)}", f"{one:.4f}", f"{split:.4f}", f"{lower} of {len(sel)}"])
    return (f"`{_cmd(r['command'])}` → `experiments/results/rounding_ablation_split.json`\n\n"
            + _table(["activation bits", "layers", "summed D, one range", "summed D, one range per part",
                      "layers where split is lower"], rows) + "\n")


def split_grid() -> str:
    """Split concat ranges measured in images (sweep_split): DADQ and the strong uniform baseline over GPTQ +
    bias curves with one activation range per concatenated input and with one per part; then the rows this run
    shares with the grid below (sweep_rounding, same sampler and seed, run by earlier code) side by side."""
    name = "sweep_split"
    if not (RESULTS / f"{name}.json").exists():
        return f"Not run yet (`experiments/results/{name}.json`).\n"
    r, rows = _first_seed(name)
    fp = rows["FP"]
    sp = r["setup"]["more_profiles"]["split"]
    table, lines = [], []
    for key, sname, _, _ in ROUNDING_SETTINGS:
        pairs = [(what, rows.get(f"{key} {base}"), rows.get(f"{key} {base.replace('gptq', 'split')}"))
                 for base, what in ((STRONG_UNIFORM[1], "uniform, first/last layers 8 bits"),
                                    (DADQ_GPTQ[1], "DADQ exact, mean over groups"))]
        if not any(one or two for _, one, two in pairs):
            continue
        for what, one, two in pairs:
            for x, ranges in ((one, "one range"), (two, "one range per part")):
                table.append([sname, what, ranges] + ([_bits(x), f"{x['fid']:.2f}", f"{x['fid'] / fp['fid']:.2f}×",
                                                        f"{x['paired_ssim_mean']:.3f}"] if x else ["–"] * 4))
            if one and two:
                lines.append(f"- **{sname}, {what}:** split ranges give {_against(two, one)}.")
    out = [f"`{_cmd(r['command'])}` → `experiments/results/{name}.json`"
           + ("" if r.get("complete") else " (**partial**: the rows marked – are not finished)"), "",
           f"{fp['n']} samples at {fp['sampler']}, seed {fp['seed']} (FP FID {fp['fid']:.2f}). Split profile: "
           f"`{sp['path']}`, the plain GPTQ recipe with split concat {sp.get('split_concat')}, built by "
           f"`{sp.get('command')}`.", "",
           _table(["setting", "row", "activation ranges of split inputs", "average bits used", "FID", "× FP",
                   "paired SSIM"], table), "", f"Per row (FID gaps under {FID_LEVEL:.0%} and paired-SSIM gaps under "
                                               f"{SSIM_LEVEL} count as level):", "", *lines]
    if (RESULTS / "sweep_rounding.json").exists():
        old = _rounding_rows(load("sweep_rounding"), fp["seed"])
        same = [(k, x, old[k]) for k, x in rows.items() if k in old and old[k]["n"] == x["n"]]
        gaps = [abs(x["fid"] / o["fid"] - 1) for _, x, o in same]
        moved = [g for g in gaps if g > 1e-4]  # the FP row moves by float rounding in its features alone
        if moved:
            out += ["", f"Of the {len(same)} rows this run shares with the grid below (`sweep_rounding`, the same "
                        f"sampler, seed and profile), {len(same) - len(moved)} give the same FID; the other "
                        f"{len(moved)}, computed there before convolution weights moved to channels_last, differ "
                        f"in FID by at most {max(moved):.1%} (median {float(np.median(moved)):.1%}): the layout "
                        "changes only float rounding, but a rounding can land an activation on the other side of "
                        "a quantization step."]
    return "\n".join(out) + "\n"


# --- issue 18: base quantizer against allocation ----------------------------------------------------

ROUNDING_SETTINGS = [("W4A 8", "W 4 + A 8 (separate budgets)", "W4A8", 1.15), ("W 4", "W 4", "W 4", 1.15),
                     ("W 3", "W 3", "W 3", 1.6), ("WA 6", "W+A 6", "W+A 6", 1.15), ("WA 4", "W+A 4", "W+A 4", 3.0)]
# (label suffix, what the row is); the label prefix is the setting's key and the method
ROUNDING_ROWS = [("uniform G=10", "uniform, RTN"), ("uniform G=10 gptq", "uniform, GPTQ + bias"),
                 ("uniform G=10 gptq ends@8", "uniform, GPTQ + bias, first/last layers 8 bits"),
                 ("exact G=10", "DADQ exact, RTN curves"), ("exact G=10 gptq", "DADQ exact, GPTQ + bias curves, per group"),
                 ("exact G=10 gptq scope=mean", "DADQ exact, GPTQ + bias curves, mean over groups"),
                 ("uniform G=10 gptq ends@8 fp-input", "uniform, GPTQ + bias, first/last layers 8 bits, x_t at FP"),
                 ("exact G=10 gptq scope=mean fp-input", "DADQ exact, GPTQ + bias curves, mean over groups, x_t at FP")]


def _in_act_order(label: str) -> str:
    """A row label with plain GPTQ (profile name ``gptq``) -> the same row with the act-order profile (``act``)."""
    return label.replace(" gptq", " act")


# the same rows with GPTQ in activation order (profile name ``act`` in the 5k result)
ACT_ROWS = [(_in_act_order(k), f"{w.replace('GPTQ', 'GPTQ act order')} (16 calibration samples per group)")
            for k, w in ROUNDING_ROWS if " gptq" in k]
FID_LEVEL, SSIM_LEVEL = 0.05, 0.005  # relative FID gap, absolute paired-SSIM gap below which two rows are level
STRONG_UNIFORM = ("uniform G=10 gptq", "uniform G=10 gptq ends@8")
DADQ_GPTQ = ("exact G=10 gptq", "exact G=10 gptq scope=mean")
FP_INPUT = " fp-input"  # the label suffix of rows with the model input x_t at full precision (allocate's fp_input)


def _against(new: dict, old: dict) -> str:
    """'FID level (37.1 vs 38.2, -3.0%) and paired SSIM level (0.960 vs 0.958)': row ``new`` against ``old``."""
    df = new["fid"] / old["fid"] - 1
    ds = new["paired_ssim_mean"] - old["paired_ssim_mean"]
    f_word = "level" if abs(df) < FID_LEVEL else ("lower" if df < 0 else "higher")
    s_word = "level" if abs(ds) < SSIM_LEVEL else ("higher" if ds > 0 else "lower")
    return (f"FID {f_word} ({new['fid']:.1f} vs {old['fid']:.1f}, {df:+.1%}) and paired SSIM {s_word} "
            f"({new['paired_ssim_mean']:.3f} vs {old['paired_ssim_mean']:.3f})")


def input_precision() -> str:
    """Paired MSE and SSIM against FP of the rows of experiments.input_precision: where 8-bit activations lose
    quality (conv_in's input, by group) and what ``fp_input`` gives back."""
    name = "input_precision"
    if not (RESULTS / f"{name}.json").exists():
        return f"Not run yet (`experiments/results/{name}.json`).\n"
    r = load(name)
    st = r["setup"]
    rows = [[x["row"], f"{x['w_avg_bits']:.3f}", f"{x['a_avg_bits']:.3f}", f"{x['paired_mse']:.4f}",
             f"{x['paired_ssim_mean']:.3f}"] for x in r["rows"]]
    return (f"`{_cmd(r['command'])}` → `experiments/results/{name}.json`\n\n{st['n']} samples, DDIM-{st['steps']}, "
            f"seed {st['seed']}, each against FP from the same noise; {st['groups']} groups, group 0 the last steps "
            "(least noise). FP bits count as 32.\n\n"
            + _table(["row", "W average bits", "A average bits", "paired MSE", "paired SSIM"], rows) + "\n\n"
            + _input_lines({x["row"]: x for x in r["rows"]}) + "\n"
            + "What that profile says of conv_in's input at 8 bits, per group:\n\n"
            + _input_curve(st["fingerprint"], _profile_of(r["command"])))


def _input_lines(by: dict) -> str:
    """The findings of input_precision, computed from its rows (by label)."""
    def mse(label):
        return by[label]["paired_mse"]

    def ssim(label):
        return by[label]["paired_ssim_mean"]

    low = next(k for k in by if "low-noise" in k)
    high = next(k for k in by if "high-noise" in k)
    fin = ", x_t at FP (fp_input)"
    uni = "W4A8 uniform, first/last layers 8"
    x_t = "conv_in's input"
    return "\n".join([
        f"- **x_t carries the cost of 8-bit activations.** Quantizing conv_in's input alone gives paired MSE "
        f"{mse(f'A 8 on {x_t} only'):.4f}; every input at 8 bits {mse('A 8, weights FP'):.4f}, "
        f"and every input but x_t {mse(f'A 8, {x_t} FP'):.4f}.",
        f"- **It is the high-noise steps.** x_t at FP in the high-noise groups only: {mse(high):.4f}; in the "
        f"low-noise groups only: {mse(low):.4f}. The profile (below) prices conv_in's 8-bit input highest in group 0, "
        "the group where keeping it FP changes least: the per-step eps distortion does not see what an early "
        "step's error does to the rest of the trajectory.",
        f"- **What `fp_input` gives back.** W4A8 DADQ: paired SSIM {ssim('W4A8 DADQ'):.3f} → {ssim('W4A8 DADQ' + fin):.3f} "
        f"(W 4 alone {ssim('W 4 DADQ'):.3f}); W+A 6 DADQ: {ssim('W+A 6 DADQ'):.3f} → {ssim('W+A 6 DADQ' + fin):.3f}; "
        f"the strong uniform baseline at W4A8: {ssim(uni):.3f} → {ssim(uni + fin):.3f}.",
    ]) + "\n"


def _profile_of(command: str) -> Path:
    """The profile file a recorded command names with --profile (default: the shipped one)."""
    m = re.search(r"--profile (\S+)", command)
    return REPO / (m[1] if m else "assets/default/profile.safetensors")


def _input_curve(fingerprint: str, path: Path) -> str:
    """Per group of the profile at ``path``: timesteps, conv_in's 8-bit input range and step, and its profiled D."""
    import dadq

    prof = dadq.Profile.load(path)
    if prof.fingerprint != fingerprint:
        return f"({path.relative_to(REPO)} is a profile of another model than this result's)\n"
    li, m = prof.layer_names.index("conv_in"), list(prof.bits).index(8)
    rows = []
    for g in range(prof.num_groups):
        lo, hi = (float(v) for v in prof.act_range[g, li, m])
        t = prof.calib_t[g]
        rows.append([str(g), f"{int(t.min())}–{int(t.max())}", f"{lo:.2f} … {hi:.2f}", f"{(hi - lo) / 255:.4f}",
                     f"{prof.d_a[g, li, m]:.2g}"])
    return _table(["group", "calibration timesteps", "8-bit range", "8-bit step", "profiled D"], rows) + "\n"


def trajectory_weights() -> str:
    """The trajectory gain per group and W4A8 allocations with the groups' D weighted by gain^p
    (experiments.trajectory_weights): FID and paired SSIM per weighting and seed."""
    name = "trajectory_weights"
    if not (RESULTS / f"{name}.json").exists():
        return f"Not run yet (`experiments/results/{name}.json`).\n"
    r = load(name)
    st = r["setup"]
    gain = np.asarray(r["gain"])
    g_rows = [[str(g), lab, f"{v:.3g}", f"{v / gain.mean():.3g}", f"{np.sqrt(v) / np.sqrt(gain).mean():.3g}"]
              for g, (lab, v) in enumerate(zip(r["group_labels"], gain))]
    word = {0.0: "none (the profile's D)", 0.5: "gain^1/2", 1.0: "gain"}
    rows = [[word.get(x["power"], f"gain^{x['power']:g}"), str(x["seed"]), f"{x['fid']:.2f}", f"{x['fp_fid']:.2f}",
             f"{x['fid'] / x['fp_fid']:.2f}×", f"{x['paired_ssim_mean']:.3f}",
             " ".join(f"{b:.2f}" for b in x["w_avg_bits_per_group"])] for x in r["rows"]]
    seeds = sorted({x["seed"] for x in r["rows"]})
    mean = {p: float(np.mean([x["fid"] for x in r["rows"] if x["power"] == p])) for p in sorted({x["power"] for x in r["rows"]})}
    wins = {p: sum(x["fid"] < y["fid"] for x in r["rows"] for y in r["rows"]
                   if x["power"] == p and y["power"] == 0 and x["seed"] == y["seed"]) for p in mean if p}
    lines = [f"- **{word.get(p, p)}:** mean FID {mean[p]:.2f} against {mean[0.0]:.2f} unweighted "
             f"({mean[p] / mean[0.0] - 1:+.1%}); lower on {wins[p]} of {len(seeds)} seed{'s' * (len(seeds) > 1)}."
             for p in mean if p]
    return (f"`{_cmd(r['command'])}` → `experiments/results/{name}.json`\n\n"
            f"Gain: {st['gain_n']} samples, DDIM-{st['steps']}, eps error σ = {st['gain_sigma']:g} at one group's steps; "
            "group 0 is the last steps (least noise). The weights are the gain (or its square root) scaled to mean 1.\n\n"
            + _table(["group", "timesteps", "gain (final MSE per eps MSE)", "weight, gain", "weight, gain^1/2"], g_rows)
            + f"\n\nW4A8 (W 4 and A 8 average bits), exact, budget over the mean of the groups, the GPTQ + bias "
            f"profile its command names; {st['n']} samples at DDIM-{st['steps']} per row, FP FID from the same sampler and seed, paired "
            "SSIM against FP from the same noise.\n\n"
            + _table(["group weights", "seed", "FID", "FP FID", "× FP", "paired SSIM",
                      "W average bits per group (0 … 9)"], rows) + "\n\n" + "\n".join(lines) + "\n")


GAIN_LABEL = re.compile(r"(?<! A) gain\^([\d.]+)$")  # sweep.config_label's suffix of a gainP row
A_GAIN_LABEL = re.compile(r" A gain\^([\d.]+)$")  # ... and of an againP row (the activations' own weights)


def _on_common_seeds(by_seed: dict, ref_by_seed: dict) -> tuple[list, np.ndarray, np.ndarray]:
    """(seeds both rows have, FID of the row there, FID of the reference row there)."""
    seeds = sorted(set(by_seed) & set(ref_by_seed))
    return seeds, np.array([by_seed[s] for s in seeds]), np.array([ref_by_seed[s] for s in seeds])


def _change(f: np.ndarray, ref: np.ndarray) -> list[str]:
    """[mean change against the reference, 'k of n' seeds where the row is lower]."""
    return [f"{f.mean() / ref.mean() - 1:+.1%}", f"{int((f < ref).sum())} of {len(f)}"]


def group_weight_powers(name: str = "sweep_gain_1k", suffix: re.Pattern = GAIN_LABEL,
                        setting: str = "DADQ exact, budget over the mean of the groups, over the profile each row names (`act`: GPTQ "
                                       "in activation order with bias correction, 16 calibration samples per group; "
                                       "`c32`: the same with 32, the shipped profile)",
                        base: str = "none") -> str:
    """FID of DADQ rows with each group's D weighted by its trajectory gain ** P (the sweep's gainP option; with
    ``suffix`` A_GAIN_LABEL, the activations' own againP) beside the same allocation without that suffix (named
    ``base``), per seed: mean, × FP, and the change against it on the seeds both have."""
    if not (RESULTS / f"{name}.json").exists():
        return f"Not run yet (`experiments/results/{name}.json`).\n"
    r = load(name)
    fid = _fid_rows(r)
    fp = fid["FP"]
    weighted = {suffix.sub("", label) for label in fid if suffix.search(label)}
    table = []
    for label, by_seed in fid.items():
        m = suffix.search(label)
        stem = suffix.sub("", label)
        if stem not in fid or stem not in weighted:
            continue
        # the row without the suffix itself: every seed it has
        seeds, f, ref = _on_common_seeds(by_seed, by_seed if m is None else fid[stem])
        table.append([stem, base if m is None else m.group(0).strip(), ", ".join(map(str, seeds)),
                      " / ".join(f"{x:.2f}" for x in f), f"{f.mean():.2f}",
                      f"{f.mean() / np.mean([fp[s] for s in seeds]):.2f}×",
                      *(["–", "–"] if m is None else _change(f, ref))])
    table.sort(key=lambda row: (row[0], row[1] != base, row[1]))
    against = "the unweighted one" if base == "none" else f"the same setting, {base},"
    return (f"`{_cmd(r['command'])}` → `experiments/results/{name}.json`\n\n"
            f"{setting}; {r['fid'][0]['n']:,} samples at {r['fid'][0]['sampler']} per row. Each weighted row is "
            f"compared with {against} on the seeds both have; FP FID per seed: "
            + ", ".join(f"{fp[s]:.2f} (seed {s})" for s in sorted(fp)) + ".\n\n"
            + _table(["setting", "group weights", "seeds", "FID per seed", "mean FID", "× FP", f"against {base}",
                      "lower on"], table) + "\n")


def sweep_profiles(name: str, *keys: str) -> list:
    """The dadq.Profile of each ``--profiles`` name in ``keys`` that the sweep result ``name`` ran over."""
    import dadq

    paths = load(name)["setup"]["more_profiles"]
    return [dadq.Profile.load(REPO / paths[k]["path"]) for k in keys]


def profile_against(name: str, other: str, command: bool = True) -> str:
    """FID of a sweep's rows over the profile named ``other`` (PROFILE_RECIPES) beside the same rows over its base
    (PROFILE_BASES), per seed, with the weights' stored size of each; and the two profiles' build times and summed
    weight D at 3 and 4 bits (on each profile's own calibration inputs). ``command``: False leaves out the sweep's
    command, for a second comparison from a sweep whose command is already shown."""

    if not (RESULTS / f"{name}.json").exists():
        return f"Not run yet (`experiments/results/{name}.json`).\n"
    r = load(name)
    fid = _fid_rows(r)
    fp = fid["FP"]
    row = {x["row"]: x for x in r["fid"]}
    bases = PROFILE_BASES[other] if isinstance(PROFILE_BASES[other], tuple) else (PROFILE_BASES[other],)
    base = bases[0]

    def both(key, fmt):  # "base / other" of one recorded quantity, '–' where a row lacks it
        return " / ".join("–" if row[x].get(key) is None else format(row[x][key], fmt) for x in (ref_label, label))

    new = f" {other}"
    table = []
    for label, by_seed in fid.items():
        refs = [(b, label.replace(new, f" {b}")) for b in bases if label.replace(new, f" {b}") in fid]
        if new not in label or not refs:
            continue
        ref_base, ref_label = refs[0]
        seeds, f, ref = _on_common_seeds(by_seed, fid[ref_label])
        fps = np.mean([fp[s] for s in seeds])
        table.append([label.replace(new, "") + ("" if ref_base == base else f" (against {ref_base})"),
                      ", ".join(map(str, seeds)),
                      f"{ref.mean():.2f} ({ref.mean() / fps:.2f}×)", f"{f.mean():.2f} ({f.mean() / fps:.2f}×)",
                      *_change(f, ref), both("stored_weight_MB", ".3f"), both("predicted_D", ".2e")])
    facts = r["setup"]["more_profiles"]
    was, var = sweep_profiles(name, base, other)
    d_ratio = ", ".join(f"{(var.d_w[..., list(var.bits).index(b)].sum() / was.d_w[..., list(was.bits).index(b)].sum()):.2f}× "
                        f"at {b} bits" for b in (3, 4))
    built = "; ".join(f"{k}: {facts[k]['seconds']:.0f} s on {facts[k]['threads']} thread(s)" for k in (base, other))
    return ((f"`{_cmd(r['command'])}` → `experiments/results/{name}.json`\n\n" if command else "")
            + f"Profiles built in {built}. Summed weight D over groups and layers, {other} ÷ {base}: {d_ratio} (each "
            "measured on the inputs of its own curves).\n\n"
            f"{r['fid'][0]['n']:,} samples at {r['fid'][0]['sampler']} per row; each row over the profile with "
            f"{PROFILE_RECIPES[base]} ({base}{', shipped' if base == SHIPPED_PROFILE else ''}) and over the same recipe "
            f"with {PROFILE_RECIPES[other]} ({other}{', shipped' if other == SHIPPED_PROFILE else ''}), mean "
            "over the seeds both have; FP FID per seed: "
            + ", ".join(f"{fp[s]:.2f} (seed {s})" for s in sorted(fp)) + ".\n\n"
            + _table(["row", "seeds", f"{base}: FID (× FP)", f"{other}: FID (× FP)", "change", "lower on",
                      f"stored weights, MB: {base} / {other}", f"predicted D: {base} / {other}"], table) + "\n")


def against_uniform(name: str, ours: str, uniform: str) -> str:
    """One line: a DADQ row of a sweep against the strong uniform baseline over the same profile, mean FID over the
    seeds both have, the change and the seeds where DADQ is lower."""
    fid = _fid_rows(load(name))
    seeds, f, ref = _on_common_seeds(fid[ours], fid[uniform])
    change, lower = _change(f, ref)
    return (f"Against uniform bits with the first/last layers at 8 over the same profile (`{uniform}`), seeds "
            f"{', '.join(map(str, seeds))}: DADQ {f.mean():.2f} against {ref.mean():.2f} ({change}), lower on {lower}.\n")


def d_per_width(name: str, other: str = "ho", ratio: str = "held-out draw ÷ fitting draw (the same quantizers)") -> str:
    """Summed D per candidate width of the profile ``other`` against its base's (PROFILE_BASES), for weights and
    activations; ``ratio`` names the two. By default a profile whose curves were measured on a held-out draw against
    its base's in-sample curves: how much measuring on the fitting inputs flatters them."""
    base, var = sweep_profiles(name, PROFILE_BASES[other], other)
    rows = [[str(b), *(f"{var.curves(k)[..., m].sum() / base.curves(k)[..., m].sum():.3f}" for k in ("w", "a"))]
            for m, b in enumerate(var.bits)]
    return (f"Summed D over groups and layers per width, {ratio}:\n\n"
            + _table(["bits", "weights", "activations"], rows) + "\n")


def group_halves(name: str = "group_halves") -> str:
    """FID of a model quantized in every group, only in the low-noise half, only in the high-noise half (and in the
    other rows of the result), beside FP: which half of the trajectory carries the gap. ``name``: group_halves (DADQ's
    W 4 allocation) or activation_cost (8-bit activations, weights FP)."""
    if not (RESULTS / f"{name}.json").exists():
        return f"Not run yet (`experiments/results/{name}.json`).\n"
    r = load(name)
    st = r["setup"]
    fid = {x["row"]: x["fid"] for x in r["rows"]}
    fp, every = fid["FP"], fid["every group"]
    rows = [[x["row"], f"{x['fid']:.2f}", f"{x['fid'] / fp:.2f}×", "–" if x["groups"] is None else
             _pct((x["fid"] - fp) / (every - fp))] for x in r["rows"]]
    if name == "group_halves":
        bits = " ".join(f"{b:.2f}" for b in st["group_avg_bits"])
        what = (f"W {st['budget']:g}, DADQ exact with the budget as the mean over groups, {GRID_PROFILE_TEXT}; weight "
                f"bits per group (0 … {st['groups'] - 1}, group 0 the last steps): {bits}.")
        head = "weights quantized in"
    else:
        what = (f"Weights at full precision, every layer's input at {st['bits']} bits (uniform, the ranges of "
                f"{GRID_PROFILE_TEXT}), the model input x_t at full precision. Timestep-embedding path: the timestep MLP and every ResNet's "
                f"`time_emb_proj`, {len(st['time_layers'])} layers.")
        if st.get("sensitive_layers"):
            what += (f" The {len(st['sensitive_layers'])} layers at FP in the row that names them are those with the "
                     f"largest {st['bits']}-bit activation D summed over the high-noise groups.")
        if any(x.get("adjust") == "activation_bias" for x in r["rows"]):
            what += (" Ranges at run time: each sample's own min/max of the input (dynamic, per tensor), or the min/max "
                     "over the batch at each step. A range per step: each layer's input at each of the sampler's steps "
                     "on 32 FP trajectories of calibration seed 0, its min/max or the clip search of the profile's "
                     "ranges. Bias corrected: each layer's bias in group g minus E[op(Q(x) − x)] over g's calibration "
                     "inputs, per output channel. Per-token layers keep their per-token ranges in every row.")
        head = "activations quantized in"
    return (f"`{_cmd(r['command'])}` → `experiments/results/{name}.json`\n\n"
            f"{what} The layers of the groups not named run at full precision. {st['n']:,} samples, "
            f"DDIM-{st['steps']}, seed {st['seed']}.\n\n"
            + _table([head, "FID", "× FP", "share of the gap of every group"], rows) + "\n")


def step_ranges() -> str:
    """W4A8 with the profile's ranges per group against a range per sampling step (experiments.step_ranges)."""
    name = "step_ranges"
    if not (RESULTS / f"{name}.json").exists():
        return f"Not run yet (`experiments/results/{name}.json`).\n"
    r = load(name)
    st = r["setup"]
    seeds = st["seeds"]
    fid = {(x["row"], x["seed"]): x["fid"] for x in r["rows"]}
    base = "ranges per group (the profile's)"
    rows = []
    for label in dict.fromkeys(x["row"] for x in r["rows"] if x["row"] != "FP"):
        ratios = [fid[(label, s)] / fid[("FP", s)] for s in seeds]
        change = [fid[(label, s)] / fid[(base, s)] - 1 for s in seeds]
        rows.append([label, *(f"{fid[(label, s)]:.2f} ({q:.3f}×)" for s, q in zip(seeds, ratios)),
                     *([f"{np.mean(ratios):.3f}×"] if len(seeds) > 1 else []),
                     "–" if label == base else ", ".join(f"{c:+.1%}" for c in change)])
    return (f"`{_cmd(r['command'])}` → `experiments/results/{name}.json`\n\n"
            f"W4A8: DADQ exact, budget over the mean of the groups, x_t at full precision, groups weighted by the "
            f"trajectory gain^{st['gain_power']:g}, over `{st['profile']}`; {st['n']:,} samples at DDIM-{st['steps']} "
            f"per row; FP FID " + ", ".join(f"{fid[('FP', s)]:.2f} (seed {s})" for s in seeds) + ".\n\n"
            + _table(["activation ranges", *(f"seed {s}: FID (× FP)" for s in seeds),
                      *(["× FP, mean"] if len(seeds) > 1 else []), "change against ranges per group"], rows) + "\n")


def output_correlation() -> str:
    """What output-level corrections (PTQD's scale k, a mean shift per channel or per channel and pixel) remove
    of the held-out eps error of DADQ allocations (experiments.output_correlation)."""
    name = "output_correlation"
    if not (RESULTS / f"{name}.json").exists():
        return f"Not run yet (`experiments/results/{name}.json`).\n"
    r = load(name)
    st, names = r["setup"], r["corrections"]
    table, best, ptqd = [], [], []
    for setting in dict.fromkeys(x["setting"] for x in r["rows"]):
        rows = [x for x in r["rows"] if x["setting"] == setting]
        mse = np.array([x["eps_mse"] for x in rows])
        # all groups together: 1 - sum of the corrected MSEs / sum of the MSEs
        shares = [1 - float((mse * (1 - np.array([x["removed"][c] for x in rows]))).sum() / mse.sum()) for c in names]
        top = max(((x["removed"][c], x["group"], c) for x in rows for c in names))
        best.append((*top, setting))
        ptqd.append(shares[0])
        table.append([setting, f"{mse.mean():.2e}", f"{max(abs(x['k']) for x in rows):.1e}",
                      *(_pct(v) for v in shares), f"{_pct(top[0])} (group {top[1]}, {top[2]})"])
    share, group, corr, setting = max(best)
    fid = {x["row"]: x["fid"] for x in r["fid"]}
    images = ""
    if fid:
        q, c = fid["quantized"], fid["quantized, channel and pixel mean subtracted"]
        images = (f"\n{st['fid_setting']} in images, {st['fid_n']} samples, DDIM-{st['fid_steps']}, seed {st['fid_seed']}, the "
                  "correction fitted on the first set:\n\n"
                  + _table(["row", "FID", "× FP"], [[k, f"{v:.2f}", f"{v / fid['FP']:.2f}×"] for k, v in fid.items()])
                  + f"\n\n- **FID does not follow.** Subtracting the channel-and-pixel mean moves FID from {q:.2f} to "
                    f"{c:.2f} ({c / q - 1:+.1%}).\n")
    return (f"`{_cmd(r['command'])}` → `experiments/results/{name}.json`\n\n"
            f"Fitted per group on {st['n']} calibration trajectories (seed {st['fit_seed']}), scored on {st['n']} others "
            f"(seed {st['test_seed']}); {st['groups']} groups, DADQ exact with the budget as the mean over groups, "
            f"{GRID_PROFILE_TEXT}. A negative share: the correction fitted on one set makes the other set's error larger.\n\n"
            + _table(["setting", "held-out eps MSE, mean over groups", "largest \\|k\\|",
                      *(f"removed: {c}, all groups" for c in names), "largest share removed in one group"], table)
            + f"\n\n- **PTQD's scale has almost nothing to remove.** |k| is at most "
              f"{max(abs(x['k']) for x in r['rows']):.1e}; all groups together it removes at most "
              f"{_pct(max(ptqd))} of the eps error.\n"
            + f"- **The largest share any correction removes in one group:** {_pct(share)} ({setting}, group {group}, "
              f"{corr}).\n" + images)


def fp_top() -> str:
    """Full precision as the top point of every curve (sweep_fptop, dadq.allocate's fp_top): DADQ over GPTQ + bias
    curves, mean over groups, with and without it; the rows without come from the grid below (sweep_rounding,
    same sampler and seed)."""
    name = "sweep_fptop"
    if not (RESULTS / f"{name}.json").exists():
        return f"Not run yet (`experiments/results/{name}.json`).\n"
    r, rows = _first_seed(name)
    fp = rows["FP"]
    old = _rounding_rows(load("sweep_rounding"), fp["seed"])
    table, lines = [], []
    for key, sname, _, _ in ROUNDING_SETTINGS:
        base = old.get(f"{key} {DADQ_GPTQ[1]}")
        top = rows.get(f"{key} {DADQ_GPTQ[1]} fp-top")
        if not (base and top):
            continue
        for x, what in ((base, "profiled widths"), (top, "profiled widths + FP")):
            table.append([sname, what, _bits(x), f"{x['predicted_D']:.3g}", f"{x['fid']:.2f}",
                          f"{x['fid'] / fp['fid']:.2f}×", f"{x['paired_ssim_mean']:.3f}"])
        lines.append(f"- **{sname}:** predicted D {base['predicted_D'] / top['predicted_D']:.1f}× lower with FP "
                     f"offered; in images {_against(top, base)}.")
    return "\n".join([f"`{_cmd(r['command'])}` → `experiments/results/{name}.json`", "",
                      f"{fp['n']} samples at {fp['sampler']}, seed {fp['seed']} (FP FID {fp['fid']:.2f}); DADQ exact "
                      "over GPTQ + bias curves, mean over groups. Predicted D: the sum of the profiled distortions, "
                      "mean over groups (0 for a full-precision choice).", "",
                      _table(["setting", "options", "average bits used", "predicted D", "FID", "× FP", "paired SSIM"],
                             table), "", f"FID gaps under {FID_LEVEL:.0%} and paired-SSIM gaps under {SSIM_LEVEL} "
                                         "count as level.", "", *lines]) + "\n"


def _bits(r: dict) -> str:
    """'4.002' (weights only), or 'W 4.002 / A 8.000' (3 decimals: pinning conv_in and conv_out adds ~0.002)."""
    return f"{r['w_avg_bits']:.3f}" if r["a_avg_bits"] >= 32 else f"W {r['w_avg_bits']:.3f} / A {r['a_avg_bits']:.3f}"


def _rounding_rows(result: dict, seed: int) -> dict[str, dict]:
    return {r["row"]: r for r in result.get("fid") or [] if r["seed"] == seed}


def _first_seed(name: str) -> tuple[dict, dict[str, dict]]:
    """A FID result and its rows {label: row} on its first seed."""
    r = load(name)
    return r, _rounding_rows(r, min(x["seed"] for x in r["fid"]))


def rounding_grid(name: str = "sweep_rounding") -> str:
    """Issue 18's grid (result ``name``): per setting, uniform bits and DADQ over RTN and over GPTQ +
    bias-corrected curves; FID (× FP of the same sampler and seed) and paired SSIM from the same samples; then
    per setting, in words computed from these numbers, what the better quantizer and the better allocation
    each buy. Rows not run show –."""
    if not (RESULTS / f"{name}.json").exists():
        return f"Not run yet (`experiments/results/{name}.json`).\n"
    r = load(name)
    seeds = sorted({x["seed"] for x in r.get("fid") or []})
    if not seeds:
        return "No finished rows yet.\n"
    seed = seeds[0]
    rows = _rounding_rows(r, seed)
    fp = rows["FP"]
    s = r["setup"]
    big = load("sweep_fid5k")  # the 5k FP row, where it is of this model
    same_model = big.get("setup", {}).get("fingerprint") == s.get("fingerprint")
    fp5k = next((x for x in big.get("fid") or [] if x["row"] == "FP"), None) if same_model else None
    gp = s["more_profiles"].get("gptq", {})
    chk = (r.get("profiled_weights_check") or {}).get("gptq")
    out = [f"`{_cmd(r['command'])}` → `experiments/results/{name}.json`"
           + ("" if r.get("complete") else " (**partial**: the rows marked – are not finished; the same command "
                                          "resumes)"), "",
           f"**Reduced sample size:** {fp['n']} samples at {fp['sampler']}, seed {seed}; FP FID at this size "
           f"{fp['fid']:.2f}" + (f" (at 5k samples, DDIM-50: {fp5k['fid']:.2f}, `sweep_fid5k`)" if fp5k else "") + ". Read FID here as an ordering within a setting; paired "
           f"SSIM (FP and quantized samples from the same noise, the same {fp['n']} samples) is the steadier "
           f"measure. RTN rows: `{s['profile']}` (round to nearest, the shipped profile until this grid). GPTQ rows: "
           f"`{gp.get('path', '–')}` (same recipe: G={gp.get('groups')}, bits {gp.get('bits', [0])[0]}–"
           f"{gp.get('bits', [0])[-1]}, {gp.get('calib_per_group')} calibration samples per group, {gp.get('mode')} "
           f"mode, metric {gp.get('metric')}, split concat {gp.get('split_concat')}; GPTQ rounding with bias "
           f"correction; shipped from this grid until the act-order profile), built by `{gp.get('command')}`."]
    if chk:
        out += ["", f"Quantized sampling uses the profiled GPTQ weights: with only `{chk['layer']}` at "
                    f"{chk['bits']} bits in group {chk['group']}, `dadq.quantize` gives D {chk['measured_D']:.6g} against "
                    f"the profiled {chk['profiled_D']:.6g} (relative difference {chk['relative_difference']:.1g}) "
                    f"{OK[chk['pass']]}."]
    if gp.get("path"):
        out += ["", "Summed weight distortion of the two profiles' curves (D of every layer's weights at one width, "
                    "summed over layers, mean over groups):", "", weight_curve_sums(REPO / s["profile"], REPO / gp["path"])]
    table = []
    for key, name, _, _ in ROUNDING_SETTINGS:
        for suffix, what in ROUNDING_ROWS:
            x = rows.get(f"{key} {suffix}")
            if x is None and suffix.endswith(FP_INPUT):  # an option the grid's command may not run
                continue
            table.append([name, what] + ([_bits(x), f"{x['fid']:.2f}", f"{x['fid'] / fp['fid']:.2f}×",
                                          f"{x['paired_ssim_mean']:.3f}"] if x else ["–"] * 4))
    out += ["", _table(["setting", "row", "average bits used", "FID", "× FP", "paired SSIM"], table)]

    def best(key, suffixes):
        got = [rows[f"{key} {k}"] for k in suffixes if f"{key} {k}" in rows]
        return min(got, key=lambda x: x["fid"]) if got else None

    lines, targets = [], []
    for key, name, tname, goal in ROUNDING_SETTINGS:
        u, e = rows.get(f"{key} uniform G=10"), rows.get(f"{key} exact G=10")
        su, dg = best(key, STRONG_UNIFORM), best(key, DADQ_GPTQ)
        if not all((u, e, su, dg)):
            lines.append(f"- **{name}:** not finished.")
            continue
        q_gain, a_gain = u["fid"] / su["fid"], u["fid"] / e["fid"]
        winner = "the better quantizer" if q_gain > a_gain else "the better allocation"
        both = u["fid"] / dg["fid"]
        # one seed of a few hundred samples does not resolve FID gaps of a few percent: those count as level
        df = dg["fid"] / su["fid"] - 1
        ds = dg["paired_ssim_mean"] - su["paired_ssim_mean"]
        f_word = "level" if abs(df) < FID_LEVEL else ("ahead" if df < 0 else "behind")
        s_word = "level" if abs(ds) < SSIM_LEVEL else ("ahead" if ds > 0 else "behind")
        if (f_word, s_word) == ("ahead", "ahead"):
            verdict = "beats it on both FID and paired SSIM"
        elif "ahead" not in (f_word, s_word):
            verdict = f"does **not** beat it (FID {f_word}, paired SSIM {s_word})"
        else:
            verdict = f"is {f_word} on FID and {s_word} on paired SSIM"
        su_what = dict(ROUNDING_ROWS)[su["row"].removeprefix(key + " ")]
        dg_what = dict(ROUNDING_ROWS)[dg["row"].removeprefix(key + " ")]
        lines.append(
            f"- **{name}:** from uniform RTN (FID {u['fid']:.1f}), {winner} buys more: the strong uniform baseline "
            f"({su_what.removeprefix('uniform, ')}, {_bits(su)} bits) reaches {su['fid']:.1f} ({q_gain:.1f}× lower), "
            f"RD allocation on RTN curves {e['fid']:.1f} ({a_gain:.1f}× lower); both together ({dg_what.removeprefix('DADQ exact, ')}) "
            f"{dg['fid']:.1f} ({both:.1f}× lower). Against the strong uniform baseline, DADQ over GPTQ + bias curves "
            f"{verdict} (FID {dg['fid']:.1f} vs {su['fid']:.1f}, paired SSIM {dg['paired_ssim_mean']:.3f} vs "
            f"{su['paired_ssim_mean']:.3f}).")
        ratio = dg["fid"] / fp["fid"]
        targets.append([tname, f"≤ {goal:g}×", f"{ratio:.2f}× ({dg_what.removeprefix('DADQ exact, ')})",
                        f"{su['fid'] / fp['fid']:.2f}×", f"{OK[ratio <= goal]} at {fp['n']} samples"])
    out += ["", f"What each lever buys, per setting (computed from the rows above; gaps under {FID_LEVEL:.0%} in FID "
                f"or {SSIM_LEVEL} in paired SSIM count as level):", "", *lines]
    if targets:
        out += ["", f"Issue 18's targets are set at 5k samples; these ratios are at {fp['n']}, where FP's own FID is "
                    "higher and ratios to it are compressed, so a ✔ here is not yet the target met:", "",
                _table(["setting", "target (5k)", f"best DADQ × FP ({fp['n']} samples)", "strong uniform × FP",
                        "met?"], targets)]
    return "\n".join(out) + "\n"


# (label suffix, metric): DADQ exact per group over curves of the same RTN recipe measured with each metric
METRIC_ROWS = [("exact G=10", "ssim+mse"), ("exact G=10 mse", "mse"), ("exact G=10 ssim", "ssim")]


def metric_grid() -> str:
    """Issue 18's metric question, answered by FID: DADQ (exact, per-group budget) over profiles that differ only
    in the distortion metric of their curves; FID × FP and paired SSIM per setting, then which metric wins."""
    if not (RESULTS / "sweep_metric.json").exists():
        return "Not run yet (`experiments/results/sweep_metric.json`).\n"
    r = load("sweep_metric")
    seeds = sorted({x["seed"] for x in r.get("fid") or []})
    if not seeds:
        return "No finished rows yet.\n"
    rows = _rounding_rows(r, seeds[0])
    fp = rows["FP"]
    more = r["setup"]["more_profiles"]
    out = [f"`{_cmd(r['command'])}` → `experiments/results/sweep_metric.json`"
           + ("" if r.get("complete") else " (**partial**: the rows marked – are not finished; the same command "
                                          "resumes)"), "",
           f"{fp['n']} samples at {fp['sampler']}, seed {seeds[0]} (FP FID {fp['fid']:.2f}), as the grid above. "
           f"Curves: `{r['setup']['profile']}` (metric ssim+mse) and, with only the metric changed, "
           + "; ".join(f"`{v['path']}` (metric {v['metric']}, built by `{v['command']}`)" for v in more.values()) + "."]
    table, wins, losses = [], {m: 0 for _, m in METRIC_ROWS}, {m: 0 for _, m in METRIC_ROWS}
    lines = []
    for key, name, _, _ in ROUNDING_SETTINGS:
        got = [(m, rows.get(f"{key} {suffix}")) for suffix, m in METRIC_ROWS]
        for m, x in got:
            table.append([name, m] + ([_bits(x), f"{x['fid']:.2f}", f"{x['fid'] / fp['fid']:.2f}×",
                                       f"{x['paired_ssim_mean']:.3f}"] if x else ["–"] * 4))
        done = [(m, x) for m, x in got if x]
        if len(done) < len(METRIC_ROWS):
            lines.append(f"- **{name}:** not finished.")
            continue
        (bm, bx), (sm, sx) = min(done, key=lambda v: v[1]["fid"]), max(done, key=lambda v: v[1]["paired_ssim_mean"])
        wm, wx = max(done, key=lambda v: v[1]["fid"])
        runner_up = sorted(x["fid"] for _, x in done)[1]
        level = runner_up / bx["fid"] - 1 < FID_LEVEL
        wins[bm] += not level
        behind = wx["fid"] / bx["fid"] - 1
        losses[wm] += behind >= FID_LEVEL
        lines.append(f"- **{name}:** lowest FID with {bm} ({bx['fid']:.1f}; next {runner_up:.1f}"
                     + (", level" if level else "") + ")"
                     + (f", highest with {wm} ({wx['fid']:.1f}, {behind:.0%} above)" if behind >= FID_LEVEL else
                        ": all three level") + f"; highest paired SSIM with {sm} ({sx['paired_ssim_mean']:.3f}).")
    out += ["", _table(["setting", "metric of the curves", "average bits used", "FID", "× FP", "paired SSIM"], table),
            "", f"Per setting (FID gaps under {FID_LEVEL:.0%} count as level):", "", *lines, "",
            "Settings won on FID, beyond level: " + ", ".join(f"{m} {n}" for m, n in wins.items())
            + "; settings lost (the highest FID, beyond level): " + ", ".join(f"{m} {n}" for m, n in losses.items()) + "."]
    return "\n".join(out) + "\n"


def levers_5k() -> str:
    """Quantizer or allocation at 5k samples: from uniform RTN (sweep_fid5k), the strong uniform baseline (the
    better quantizer), DADQ over RTN curves with the per-group budget (the better allocation, sweep_fid5k) and
    DADQ over GPTQ + bias curves (both, sweep_rounding_5k); same sampler and seed. Settings with all four rows."""
    old, new = _first_seed("sweep_fid5k")[1], _first_seed("sweep_rounding_5k")[1]
    table = []
    for key, sname, _, _ in ROUNDING_SETTINGS:
        base, *rest = (old.get(f"{key} uniform G=10"), new.get(f"{key} {STRONG_UNIFORM[1]}"),
                       old.get(f"{key} exact G=10"), new.get(f"{key} {DADQ_GPTQ[1]}"))
        if base and all(rest):
            table.append([sname, f"{base['fid']:.2f}"] + [f"{x['fid']:.2f} ({base['fid'] / x['fid']:.1f}× lower)"
                                                          for x in rest])
    return (_table(["setting", "uniform RTN", "better quantizer: strong uniform",
                    "better allocation: DADQ over RTN curves, per-group budget", "both: DADQ over GPTQ + bias curves"],
                   table) + "\n")


def _fp_input_lines(rows: dict, key: str, sname: str, fp_fid: float) -> list[str]:
    """What keeping x_t at FP changes in one setting's rows (seed-1 rows {label: row}): DADQ and the strong
    uniform baseline each against itself without it, and against each other where both ran."""
    out = []
    for kind, suffix in (("DADQ", DADQ_GPTQ[1]), ("the strong uniform baseline", STRONG_UNIFORM[1])):
        plain, fin = rows.get(f"{key} {suffix}"), rows.get(f"{key} {suffix}{FP_INPUT}")
        if plain and fin:
            out.append(f"- **{sname}, x_t at FP:** {kind} goes from FID {plain['fid']:.2f} ({plain['fid'] / fp_fid:.2f}× FP) "
                       f"to {fin['fid']:.2f} ({fin['fid'] / fp_fid:.2f}× FP), {_bits(fin)} average bits.")
    ours, base = rows.get(f"{key} {DADQ_GPTQ[1]}{FP_INPUT}"), rows.get(f"{key} {STRONG_UNIFORM[1]}{FP_INPUT}")
    if ours and base:
        word, vs = _standing(ours, base)
        out.append(f"- **{sname}, both with x_t at FP:** DADQ over GPTQ + bias curves is {word} the strong uniform "
                   f"baseline: {vs}.")
    return out


def _standing(ours: dict, base: dict) -> tuple[str, str]:
    """(word, comparison) of row ``ours`` against ``base``: ('ahead of', 'FID 13.00 against 16.98 (-23%)')."""
    df = ours["fid"] / base["fid"] - 1
    word = "level with" if abs(df) < FID_LEVEL else ("ahead of" if df < 0 else "**behind**")
    return word, f"FID {ours['fid']:.2f} against {base['fid']:.2f} ({df:+.0%})"


def _target_cell(ratio: float, goal: float, ours: bool) -> str:
    """'≤ 1.15× ✔' for a DADQ row (its × FP ``ratio`` against issue 18's ``goal``), '≤ 1.15×' for a baseline."""
    return f"≤ {goal:g}× {OK[ratio <= goal] if ours else ''}".strip()


def _seed_grid(name: str, about: str, lines_of: Callable[[dict], list[str]]) -> str:
    """A sweep result over seeds: its command, ``about`` (after the sample count, sampler and seeds), the FID per
    seed (fid_table) and the bullet lines ``lines_of(rows)`` make from {row label: {seed: FID}}."""
    if not (RESULTS / f"{name}.json").exists():
        return f"Not run yet (`experiments/results/{name}.json`).\n"
    r = load(name)
    fid = r["fid"]
    seeds = sorted({x["seed"] for x in fid})
    return "\n".join([f"`{_cmd(r['command'])}` → `experiments/results/{name}.json`"
                      + ("" if r.get("complete") else " (**partial**)"), "",
                      f"{fid[0]['n']:,} samples at {fid[0]['sampler']}, seed{'s' * (len(seeds) > 1)} {', '.join(map(str, seeds))}; "
                      f"{about}", "",
                      fid_table(fid, seeds), "", *lines_of(_fid_rows(r))]) + "\n"


def _lower_on(x: dict | None, y: dict | None) -> tuple[int, int, float, float] | None:
    """(seeds where x's FID is below y's, seeds both have, mean x, mean y) over the seeds both rows have;
    x, y: {seed: FID}. None when they share no seed."""
    common = sorted(set(x or {}) & set(y or {}))
    if not common:
        return None
    return (sum(x[k] < y[k] for k in common), len(common), float(np.mean([x[k] for k in common])),
            float(np.mean([y[k] for k in common])))


def _allocation_lines(rows: dict) -> list[str]:
    """Per setting: on how many seeds DADQ over GPTQ + bias curves beats the strong uniform baseline, and what x_t at
    FP does to each. rows: {row label: {seed: FID}}."""
    lines = []
    for key, sname, _, _ in ROUNDING_SETTINGS:
        for tail in ("", FP_INPUT):
            c = _lower_on(rows.get(f"{key} {DADQ_GPTQ[1]}{tail}"), rows.get(f"{key} {STRONG_UNIFORM[1]}{tail}"))
            if c:
                lines.append(f"- **{sname}{', both with x_t at FP' if tail else ''}:** DADQ over GPTQ + bias curves "
                             f"has the lower FID on {c[0]} of {c[1]} seeds (mean {c[2]:.2f} against {c[3]:.2f}).")
        for kind, suffix in (("DADQ", DADQ_GPTQ[1]), ("the strong uniform baseline", STRONG_UNIFORM[1])):
            c = _lower_on(rows.get(f"{key} {suffix}{FP_INPUT}"), rows.get(f"{key} {suffix}"))
            if c:
                lines.append(f"- **{sname}, x_t at FP:** {kind} has the lower FID with it on {c[0]} of {c[1]} "
                             f"seeds (mean {c[2]:.2f} against {c[3]:.2f} without).")
    return lines


def _act_order_lines(rows: dict) -> list[str]:
    """Per setting, for DADQ and the strong uniform baseline: on how many seeds GPTQ in activation order (profile name
    ``act``) beats plain GPTQ, and DADQ against uniform when both are in act order. rows: {row label: {seed: FID}}."""
    lines = []
    for key, sname, _, _ in ROUNDING_SETTINGS:
        for tail in ("", FP_INPUT):
            for kind, suffix in (("DADQ", DADQ_GPTQ[1]), ("strong uniform", STRONG_UNIFORM[1])):
                c = _lower_on(rows.get(f"{key} {_in_act_order(suffix)}{tail}"), rows.get(f"{key} {suffix}{tail}"))
                if c:
                    lines.append(f"- **{sname}{', x_t at FP' if tail else ''}, {kind}:** act order has the lower "
                                 f"FID on {c[0]} of {c[1]} seeds (mean {c[2]:.2f} against {c[3]:.2f}, "
                                 f"{c[2] / c[3] - 1:+.1%}).")
            c = _lower_on(*[rows.get(f"{key} {_in_act_order(k)}{tail}") for k in (DADQ_GPTQ[1], STRONG_UNIFORM[1])])
            if c:
                lines.append(f"- **{sname}{', x_t at FP' if tail else ''}, both in act order:** DADQ has the lower "
                             f"FID on {c[0]} of {c[1]} seeds (mean {c[2]:.2f} against {c[3]:.2f}).")
    return lines


def rounding_1k() -> str:
    """Issue 18's grid at 1k samples over seeds (sweep_rounding_1k): FID per seed with mean ± std (fid_table), and
    per setting whether DADQ over GPTQ + bias curves beats the strong uniform baseline on every seed."""
    return _seed_grid("sweep_rounding_1k", "the FP rows are the ones of the main sweep (same sampler and seeds, shared "
                      "through its cell cache).", _allocation_lines)


def rounding_1k_fashion() -> str:
    """The headline pairs of issue 18's grid on the Fashion-MNIST model at 1k samples (sweep_rounding_fashion_1k),
    plain GPTQ (``gptq``) and, where run, act order (``act``, 16 calibration samples per group)."""
    return _seed_grid("sweep_rounding_fashion_1k", "FID against the Fashion-MNIST test split; rows named `gptq` use "
                      "plain GPTQ (`experiments/results/profiles/gptq/fashion_gptq_bc_calib16.safetensors`), rows "
                      "named `act` the same recipe in activation order "
                      "(`experiments/results/profiles/gptq_act/fashion_gptqact_bc_calib16.safetensors`).",
                      lambda rows: _allocation_lines(rows) + _act_order_lines(rows))


def gptq_order_fid() -> str:
    """FID with GPTQ in activation order against plain GPTQ (sweep_act_1k; profile name ``act``), per setting
    for DADQ and the strong uniform baseline: FID per seed (fid_table) and on how many seeds act order is lower."""
    return _seed_grid("sweep_act_1k", "rows named `gptq` use plain GPTQ (columns left to right; the shipped profile "
                      "until this comparison), rows named `act` the same recipe in activation order (16 calibration "
                      "samples per group, as the shipped profile's recipe with 32); the `gptq` and FP rows are the cells of "
                      "[the 1k grid](#base-quantizer-against-allocation-issue-18).", _act_order_lines)


def rounding_5k() -> str:
    """Issue 18's grid at its own sample size, row by row as the 5k runs finish (sweep_rounding_5k): FID and
    × FP of the same sampler and seed, with the target of the row's setting."""
    name = "sweep_rounding_5k"
    if not (RESULTS / f"{name}.json").exists():
        return f"Not run yet (`experiments/results/{name}.json`).\n"
    r, rows = _first_seed(name)
    fp = rows["FP"]
    what = dict(ROUNDING_ROWS + ACT_ROWS)
    ours_rows = DADQ_GPTQ + tuple(map(_in_act_order, DADQ_GPTQ))
    table, lines = [], []
    for key, sname, _, goal in ROUNDING_SETTINGS:
        for suffix, text in ROUNDING_ROWS + ACT_ROWS:
            x = rows.get(f"{key} {suffix}")
            if x:
                ratio = x["fid"] / fp["fid"]
                ours = suffix.removesuffix(FP_INPUT) in ours_rows
                table.append([sname, what[suffix], _bits(x), f"{x['fid']:.2f}", f"{ratio:.2f}×",
                              _target_cell(ratio, goal, ours)])
        dadq_rows = [rows[f"{key} {k}"] for k in DADQ_GPTQ if f"{key} {k}" in rows]
        strong = [rows[f"{key} {k}"] for k in STRONG_UNIFORM if f"{key} {k}" in rows]
        if dadq_rows and strong:
            dg, su = min(dadq_rows, key=lambda x: x["fid"]), min(strong, key=lambda x: x["fid"])
            word, vs = _standing(dg, su)
            lines.append(f"- **{sname}:** DADQ over GPTQ + bias curves is {word} the strong uniform baseline at this "
                         f"size: {vs}.")
        lines += _fp_input_lines(rows, key, sname, fp["fid"])
    return (f"`{_cmd(r['command'])}` → `experiments/results/{name}.json`\n\n{fp['n']:,} samples at {fp['sampler']}, "
            f"seed {fp['seed']}; FP FID {fp['fid']:.2f}. Rows not listed are not run at this size yet.\n\n"
            + _table(["setting", "row", "average bits used", "FID", "× FP", "issue 18's target"], table) + "\n"
            + ("\n" + "\n".join(lines) + "\n" if lines else ""))


def largest_activation_d(name: str, bits: int = 8) -> str:
    """Where a profile's (``--profiles`` name in sweep_bits10_1k) activation distortion at ``bits`` sits: its largest
    (layer, group) and that one's share of the sum over every layer and group but the model input's (models.INPUT_LAYERS,
    which the fp_input rows keep at full precision)."""
    from dadq.models import INPUT_LAYERS

    prof, = sweep_profiles("sweep_bits10_1k", name)
    d = prof.d_a[..., list(prof.bits).index(bits)].copy()
    d[:, [i for i, n in enumerate(prof.layer_names) if n in INPUT_LAYERS]] = 0.0
    g, li = np.unravel_index(np.nanargmax(d), d.shape)
    return (f"In the {name} profile the largest activation D at {bits} bits, the model input aside, is "
            f"`{prof.layer_names[li]}` in group {g} ({prof.groups.labels()[g]}): {d[g, li]:.2e}, "
            f"{d[g, li] / np.nansum(d):.0%} of the activation D at {bits} bits summed over layers and groups.\n")


def shipped_gain(groups) -> np.ndarray:
    """float [G]: the default model's shipped trajectory gain (``gain.json``, the sweeps' GAIN_SETTINGS) over
    ``groups``."""
    import dadq
    from dadq.models import shipped_file
    from dadq.trajectory import GAIN_FILE, load_gain

    return load_gain(shipped_file("default", GAIN_FILE), groups, dadq.load_model())[0]


def lowest_width_use(name: str, base: str, other: str, budget: float = 3.0) -> str:
    """Where the W ``budget`` allocation (exact, budget over the mean of the groups, groups weighted by the shipped
    trajectory gain ** HEADLINE_GAIN_POWER) puts the weights of ``base`` and ``other`` (--profiles names of the sweep
    result ``name``): the share of weight elements at each width, and per group at each profile's lowest width."""
    import dadq
    from experiments.sweep import config_allocation

    profs = dict(zip((base, other), sweep_profiles(name, base, other)))
    gain = shipped_gain(profs[base].groups)
    widths = sorted(set().union(*(map(int, p.bits) for p in profs.values())))
    overall, per_group = [], []
    for k, prof in profs.items():
        bits = np.asarray(config_allocation(dadq, "w", budget, "exact", prof,
                                            {"scope": "mean", "gain_power": HEADLINE_GAIN_POWER}, gain).w_bits)
        numel = np.broadcast_to(np.asarray(prof.w_numel)[None, :], bits.shape)
        overall.append([k] + [f"{numel[bits == b].sum() / numel.sum():.1%}" if b in prof.bits else "–" for b in widths])
        low = int(min(prof.bits))
        per_group.append([f"{k}: {low} bit{'s' if low > 1 else ''}", f"{(bits == low).sum()} of {bits.size}"]
                         + [f"{x:.0%}" for x in (numel * (bits == low)).sum(1) / numel.sum(1)])
    groups = profs[base].groups.labels()
    return (f"W {budget:g}, exact, budget over the mean of the groups, groups weighted by gain^{HEADLINE_GAIN_POWER:g}: "
            "the share of weight elements (over layers and groups) at each width,\n\n"
            + _table(["profile"] + [f"{b} bit{'s' if b > 1 else ''}" for b in widths], overall)
            + "\n\nand the (layer, group) weights at each profile's lowest width, with the share of each group's "
              "weight elements there:\n\n"
            + _table(["lowest width", "quantizers there"] + [f"group {g} ({lab})" for g, lab in enumerate(groups)],
                     per_group) + "\n")


def activation_bits_per_group(name: str) -> str:
    """For each W4A config of the sweep result ``name`` (its command's --fid-configs): the average activation bits
    of each timestep group over the quantized inputs (x_t at full precision left out), and the share of all
    activation elements at 5 bits or fewer."""
    import dadq
    from experiments.sweep import config_allocation, config_label, fid_configs

    r = load(name)
    names = list(r["setup"]["more_profiles"])
    profs = dict(zip(names, sweep_profiles(name, *names)))
    gain = shipped_gain(profs[names[0]].groups)  # the sweep's profiles share their groups
    text = re.search(r"--fid-configs (\S+)", r["command"]).group(1)
    rows, labels = [], None
    for t, b, m, prof, opts in (c for c in fid_configs(text, None, profs) if c != "fp" and c[0] == "w4a"):
        a = config_allocation(dadq, t, b, m, prof, opts, gain)
        bits = np.asarray(a.a_bits, float)
        numel = np.broadcast_to(np.asarray(a.a_numel, float)[None, :], bits.shape) * (bits < 32)
        rows.append([config_label(t, b, m, prof, opts), *(f"{x:.2f}" for x in (bits * numel).sum(1) / numel.sum(1)),
                     f"{numel[bits <= 5].sum() / numel.sum():.1%}"])
        labels = prof.groups.labels()
    return ("Average activation bits per group (x_t left out) of each W4A8 allocation above, and the share of "
            "activation elements at 5 bits or fewer:\n\n"
            + _table(["row", *(f"group {g} ({lab})" for g, lab in enumerate(labels)), "≤ 5 bits"], rows) + "\n")


def weight_d_rises(name: str, base: str, other: str) -> str:
    """The widths where profile ``other``'s summed weight D (layers, mean over groups) is above ``base``'s, and the
    layer that adds most of the rise; both are --profiles names of the sweep result ``name``."""
    a, b = sweep_profiles(name, base, other)
    lines = []
    for m, bits in enumerate(b.bits):
        da, db = a.d_w[:, :, m].mean(0), b.d_w[:, :, m].mean(0)
        if db.sum() > da.sum():
            li = int(np.argmax(db - da))
            lines.append(f"- at {bits} bits: {db.sum() / da.sum():.2f}× {base}'s; `{b.layer_names[li]}` adds "
                         f"{(db - da)[li] / (db.sum() - da.sum()):.0%} of the rise "
                         f"({b.w_numel[li]:,} weights).")
    return (f"Widths where the {other} profile's summed weight D is above the {base} profile's:\n\n"
            + ("\n".join(lines) if lines else "- none.") + "\n")


def variants_5k() -> str:
    """The 5k rows (sweep_rounding_5k) over the profiles in activation order beside the grids' (PROFILE_RECIPES), the
    shipped one among them: FID and × FP of each,
    with the target of its setting, and each DADQ row against the strong uniform baseline over the same profile."""
    r, rows = _first_seed("sweep_rounding_5k")
    fp = rows["FP"]
    goals = {key: goal for key, _, _, goal in ROUNDING_SETTINGS}
    table, lines = [], []
    for name in (n for n in PROFILE_RECIPES if n != GRID_PROFILE):
        for label, x in rows.items():
            if f" {name} " not in label:
                continue
            key = next(k for k in goals if label.startswith(k + " "))
            ratio = x["fid"] / fp["fid"]
            ours = " exact " in label
            table.append([label, recipe(name), _bits(x), f"{x['fid']:.2f}", f"{ratio:.2f}×",
                          _target_cell(ratio, goals[key], ours)])
            u = rows.get(f"{key} uniform G=10 {name} ends@8" + (FP_INPUT if FP_INPUT in label else ""))
            if ours and u:
                word, vs = _standing(x, u)
                lines.append(f"- **{label}** is {word} uniform bits with the first/last layers at 8 over the same "
                             f"profile: {vs}.")
    return (f"{fp['n']:,} samples at {fp['sampler']}, seed {fp['seed']}; FP FID {fp['fid']:.2f} "
            f"(`experiments/results/sweep_rounding_5k.json`; its command heads the [5k grid](#base-quantizer-against-allocation-issue-18)).\n\n"
            + _table(["row", "profile", "average bits used", "FID", "× FP", "issue 18's target"], table) + "\n"
            + ("\n" + "\n".join(lines) + "\n" if lines else ""))


# the 5k rows sampled on a lent GPU over seeds 1-3, and the CPU's 5k results (seed 1) they are checked against
GPU_5K = "sweep_gpu_5k"
CPU_5K = ("sweep_fid5k", "sweep_rounding_5k", "sweep_grid_5k")


def _dadq_over_strong_curves(label: str, key: str) -> bool:
    """A DADQ row of setting ``key`` over a GPTQ + bias profile: "<key> exact G=10 <profile> ..."; the plain
    "<key> exact G=10" row is over round-to-nearest curves."""
    return label.startswith(f"{key} exact G=10 ")


def gpu_5k() -> str:
    """The 5k rows sampled on a GPU (GPU_5K): FID per seed, the CPU's seed-1 FID of the same row where it ran, × FP of
    the same seeds on seed 1 and over the seeds done, and issue 18's target on both; then how far GPU and CPU agree."""
    r = load(GPU_5K)
    by_label = _fid_rows(r)
    seeds = sorted({s for v in by_label.values() for s in v})
    fp = by_label["FP"]
    cpu = {}
    for name in CPU_5K:
        cpu.update({label: v[1] for label, v in _fid_rows(load(name), seed=1).items()})
    goals = {key: goal for key, _, _, goal in ROUNDING_SETTINGS}
    table, gaps = [], []
    for label, by in by_label.items():
        if 1 in by and label in cpu:
            gaps.append(by[1] / cpu[label] - 1)
        if label == "FP":
            table.append([label, *(f"{by[s]:.2f}" if s in by else "–" for s in seeds), _f(cpu.get(label), 2), "–", "–", "–"])
            continue
        first = by[1] / fp[1] if 1 in by else None
        mean = _over_fp(by, fp)
        key = next(k for k in goals if label.startswith(k + " "))
        ours = _dadq_over_strong_curves(label, key)
        goal = goals[key]
        target = (f"≤ {goal:g}×: seed 1 {OK[first <= goal]}, mean {OK[mean <= goal]}" if ours and first is not None
                  else f"≤ {goal:g}×")
        table.append([label, *(f"{by[s]:.2f}" if s in by else "–" for s in seeds), _f(cpu.get(label), 2),
                      "–" if first is None else f"{first:.3f}×", f"{mean:.3f}× ({len(by)})", target])
    gaps = np.abs(np.array(gaps))
    return (f"`{_cmd(r['command'])}` → `experiments/results/{GPU_5K}.json`" + ("" if r.get("complete") else " (**partial**)")
            + f"\n\n{r['fid'][0]['n']:,} samples at {r['fid'][0]['sampler']} on {' / '.join(sorted({x.get('gpu') or 'a GPU' for x in r['fid']}))} "
              f"(the rows' cells; the result was assembled from them on the CPU). The CPU column is the same row's seed-1 "
              f"FID from `{'`, `'.join(f'{n}.json' for n in CPU_5K)}`; "
              f"over the {len(gaps)} rows both ran, the GPU's FID differs from the CPU's by {np.median(gaps):.2%} in the "
              f"median and {gaps.max():.2%} at most. The two × FP columns divide by the FP FID of the same seeds "
              f"(seed 1 alone; the mean FID over the seeds done, their count in brackets, by the mean FP FID there). "
              f"Targets are checked on DADQ rows over the GPTQ + bias curves only.\n\n"
            + _table(["row", *(f"seed {s}" for s in seeds), "CPU, seed 1", "× FP, seed 1", "× FP, seeds done",
                      "issue 18's target"], table) + "\n")


SEEDS_5K = "sweep_seeds_5k"  # the CPU's 5k rows over seeds 1-3 for the settings the GPU did not check there
SEEDS = (1, 2, 3)


def targets_over_seeds() -> str:
    """Per setting of issue 18: of the DADQ rows over GPTQ + bias curves sampled at 5k on every one of SEEDS, on the CPU
    (SEEDS_5K) or on a GPU (GPU_5K), the lowest over the seeds: × FP per seed, × FP over the seeds (mean FID over the
    mean FP FID of the same seeds) and over the seeds after the first, and whether each meets the target."""
    found = []
    for name, where in ((SEEDS_5K, "CPU"), (GPU_5K, "GPU")):
        by_label = _fid_rows(load(name))
        fp = by_label["FP"]
        for order, (key, _, tname, goal) in enumerate(ROUNDING_SETTINGS):
            for label, by in by_label.items():
                if _dadq_over_strong_curves(label, key) and set(SEEDS) <= set(by):
                    by = {s: by[s] for s in SEEDS}
                    found.append((order, _over_fp(by, fp), tname, label, where, by, fp, goal))
    table, shown = [], set()
    for order, mean, tname, label, where, by, fp, goal in sorted(found, key=lambda f: f[:2]):
        if order in shown:  # the setting's lowest row over the seeds only
            continue
        shown.add(order)
        held = _over_fp({s: by[s] for s in SEEDS[1:]}, fp)  # the seeds no row was chosen on
        table.append([tname, label, where, *(f"{by[s] / fp[s]:.3f}×" for s in SEEDS), f"{mean:.3f}× {OK[mean <= goal]}",
                      f"{held:.3f}× {OK[held <= goal]}", f"≤ {goal:g}×"])
    return (_table(["setting", "DADQ row", "sampled on", *(f"× FP, seed {s}" for s in SEEDS),
                    f"× FP, seeds {SEEDS[0]}–{SEEDS[-1]}", f"× FP, seeds {SEEDS[1]}–{SEEDS[-1]}", "target"], table)
            + f"\n\n5,000 samples, DDIM-50, each seed's FP FID from the same sampler and seed; over several seeds, the row's mean "
              f"FID over FP's on the same seeds. The rows were chosen on seed {SEEDS[0]}, each the lowest of its setting's "
              f"variants when it was run again; seeds {SEEDS[1]}–{SEEDS[-1]} came after that choice and check it. "
              f"Each setting's lowest of the DADQ rows over the GPTQ + bias curves that ran on all of seeds {SEEDS[0]}–{SEEDS[-1]}: on the CPU (`experiments/results/{SEEDS_5K}.json`) or on a lent GPU "
              f"(`experiments/results/{GPU_5K}.json`; every row in results, \"5k over seeds on a GPU\").\n")


def profile_cifar10() -> str:
    """How long a full profile of the CIFAR-10 DDPM architecture took on a GPU (benchmarks.profile_cifar10), or how far
    it got: its progress is recorded at each tenth, so a run cut short still gives a pace."""
    import inspect

    import dadq
    from benchmarks.profile_cifar10 import RECIPES

    b = bench("profile_cifar10_cuda")
    m = b["model"]
    # a full run passes no settings: dadq.profile's defaults
    st = {k: b["settings"].get(k, v.default) for k, v in inspect.signature(dadq.profile).parameters.items()
          if k in ("groups", "bits", "calib_per_group", "mode")}
    bits = list(st["bits"])
    rows = []
    for recipe in RECIPES:
        x = b["recipes"].get(recipe)
        if x is None:
            rows.append([recipe, "not run"])
        elif x["complete"]:
            rows.append([recipe, f"{x['seconds']:.0f} s"])
        else:
            frac, t = x["progress"][-1]
            pace = ", ".join(f"{f:.0%} at {s:.0f} s" for f, s in x["progress"])
            rows.append([recipe, f"cut short at {frac:.0%} of its points after {t:.0f} s ({pace}); at that pace "
                                 f"the whole takes about {t / frac:.0f} s"])
    return (f"`{_cmd(b['command'])}` → `benchmarks/results/profile_cifar10_cuda.json`, on {b['machine'].get('gpu')} "
            f"(torch {b['machine']['torch']}): google/ddpm-cifar10-32's architecture, {m['parameters'] / 1e6:.1f} M "
            f"parameters, {m['quantizable_layers']} quantizable layers, random weights; G={st['groups']}, bits {bits[0]}–{bits[-1]}, "
            f"{st['calib_per_group']} calibration samples per group, {st['mode']} mode, weights and activations." + (f" Note: {b['note']}." if b.get("note") else "")
            + "\n\n" + _table(["recipe", "profile time"], rows) + "\n")


def weight_curve_sums(rtn_path: Path, gptq_path: Path) -> str:
    """Per width: the summed weight D of an RTN and a GPTQ profile (mean over groups) and their ratio."""
    import dadq

    a, b = dadq.Profile.load(rtn_path), dadq.Profile.load(gptq_path)
    rows = []
    for m, bits in enumerate(a.bits):
        x, y = float(a.d_w[:, :, m].sum(1).mean()), float(b.d_w[:, :, m].sum(1).mean())
        rows.append([str(int(bits)), f"{x:.4g}", f"{y:.4g}", f"{x / y:.1f}×"])
    return _table(["weight bits", "RTN", "GPTQ + bias", "RTN ÷ GPTQ"], rows)


def bias_out_of_sample() -> str:
    """Bias correction estimated on one calibration set and scored on another (rounding_ablation --parts bias)."""
    r = load("rounding_ablation_bias")
    rows = [[f"`{x['layer']}`", x["rounding"], str(x["bits"]), f"{x['D_held_out']:.3g}", f"{x['D_held_out_corrected']:.3g}",
             f"{x['D_held_out'] / x['D_held_out_corrected']:.2f}×", f"{x['D_estimation'] / x['D_estimation_corrected']:.2f}×"]
            for x in r["bias"]["summary"]]
    st = r["setup"]
    return (f"`{_cmd(r['command'])}` → `experiments/results/rounding_ablation_bias.json`\n\n"
            f"D of the whole model with one layer's weights quantized, mean over {st['groups']} groups; bias "
            f"estimated on calibration seed {st['estimation_seed']}, scored on seed {st['held_out_seed']} "
            f"({st['calib_per_group']} samples per group each):\n\n"
            + _table(["layer", "rounding", "weight bits", "D held out", "D held out, corrected", "gain held out",
                      "gain in sample"], rows) + "\n")


def _held_out_mse(name: str, part: str, ratio_words: str, headers: list[str], row) -> str:
    """A rounding_ablation part that compares weight variants by each layer's held-out output MSE: the command, the
    calibration sets, and one table row ``row(summary entry)`` per width."""
    r = load(name)
    st = r["setup"]
    return (f"`{_cmd(r['command'])}` → `experiments/results/{name}.json`\n\n"
            f"Each quantizable layer's output MSE on held-out inputs (calibration seed {st['held_out_seed']}; Hessians "
            f"from seed {st['estimation_seed']}; {st['groups']} groups × {st['calib_per_group']} samples each), "
            f"{ratio_words} per layer, geometric mean over groups; then the geometric mean and the median over layers:\n\n"
            + _table(headers, [row(x) for x in r[part]["summary"]]) + "\n")


def gptq_order() -> str:
    """GPTQ in activation order against left to right, held-out layer output MSE (rounding_ablation --parts order)."""
    return _held_out_mse(
        "rounding_ablation_order", "order", "as a ratio",
        ["weight bits", "GPTQ ÷ RTN", "act order ÷ GPTQ", "median over layers", "act order lower in",
         "summed MSE, GPTQ ÷ act order"],
        lambda x: [str(x["bits"]), f"{x['plain_over_rtn_geo']:.3f}", f"{x['act_over_plain_geo']:.3f}",
                   f"{x['act_over_plain_median']:.3f}", f"{x['act_lower_in_layers']} of {x['layers']}",
                   f"{x['sum_mse']['gptq'] / x['sum_mse']['gptq_act']:.2f}×"])


def weight_grid() -> str:
    """The asymmetric per-channel weight grid against the symmetric one, held-out layer output MSE
    (rounding_ablation --parts grid)."""
    return _held_out_mse(
        "rounding_ablation_grid", "grid", "asymmetric grid ÷ symmetric grid",
        ["weight bits", "RTN: asym ÷ sym", "GPTQ act order: asym ÷ sym", "median over layers", "asym lower in",
         "summed MSE, sym ÷ asym"],
        lambda x: [str(x["bits"]), f"{x['rtn_asym_over_rtn_geo']:.3f}", f"{x['ratio_geo']:.3f}",
                   f"{x['ratio_median']:.3f}", f"{x['lower_in_layers']} of {x['layers']}",
                   f"{x['sum_mse']['gptq_act'] / x['sum_mse']['gptq_act_asym']:.2f}×"])


def clip_search() -> str:
    """Each channel's clip ratio by output error after GPTQ (``gptq-act-clip``) against by weight MSE, held-out
    layer output MSE (rounding_ablation --parts clip), and the time each rounding takes for the whole model."""
    c = load("rounding_ablation_clip")["clip"]
    sec = c["rounding_seconds"]
    timing = (f"Rounding the whole model ({c['summary'][0]['layers']} layers) at every width 2–8, the Hessians included, "
              f"two interleaved runs each on one thread: GPTQ in activation order {sum(sec['gptq-act']):.0f} s, clip by "
              f"output error {sum(sec['gptq-act-clip']):.0f} s, {c['rounding_seconds_ratio']:.1f}× as long.\n")
    return _held_out_mse(
        "rounding_ablation_clip", "clip", "clip by output error ÷ clip by weight MSE",
        ["weight bits", "clip by output error ÷ RTN", "÷ GPTQ act order", "median over layers", "lower in",
         "summed MSE, GPTQ act order ÷ clip by output error"],
        lambda x: [str(x["bits"]), f"{x['clip_over_rtn_geo']:.3f}", f"{x['ratio_geo']:.3f}",
                   f"{x['ratio_median']:.3f}", f"{x['lower_in_layers']} of {x['layers']}",
                   f"{x['sum_mse']['gptq_act'] / x['sum_mse']['gptq_act_clip']:.2f}×"]) + "\n" + timing


# --- the embedded models' quality cards -------------------------------------------------------------

QUALITY_ROWS = [("train_10k_vs_test", "{data} train images (sanity: near 0)"), ("ddim50_1k", "model, DDIM-50"),
                ("ddim100_1k", "model, DDIM-100"), ("ddim50_5k", "model, DDIM-50"), ("ddpm1000_256", "model, DDPM-1000"),
                ("ddpm1000_5k", "model, DDPM-1000"),
                ("broken_w2_ddim50_1k", "broken model (all weights 2-bit uniform), DDIM-50"),
                ("gaussian_noise_1k", "Gaussian noise")]


def quality(folder: str) -> str:
    q = _load(REPO / "assets" / folder / "quality.json")
    data = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}[q["dataset"]]
    rows = [[text.format(data=data), f"{q[k]['n']:,}", q[k].get("device", q.get("device", "cpu")).replace("cpu", "CPU"),
             f"{q[k]['fid']:.2f}"] for k, text in QUALITY_ROWS if k in q]
    out = [f"`{_cmd(q['command'])}` → `assets/{folder}/quality.json`", "",
           f"{q['metric']}, against the {q['reference']}:", "",
           _table(["images", "n", "sampled on", "FID"], rows)]
    c = q.get("classifier_on_ddim100_1k")
    if c:
        out += ["", f"{100 * c['frac_conf_gt_0.9']:.1f}% of the 1k DDIM-100 samples get classifier confidence > 0.9; "
                    f"every class holds {100 * c['min_class_frac']:.1f}–{100 * c['max_class_frac']:.1f}% of them."]
    return "\n".join(out) + "\n"


def default_model() -> str:
    out = quality("default")
    g = _load(REPO / "training" / "gpu_quality.json")
    c = g["classifier_on_ddim100_1k"]
    return out + (f"\nThe same DDIM-100 check sampled on the {g['ddim100_1k']['device']} "
                  f"(`training/gpu_quality.json`): FID {g['ddim100_1k']['fid']:.2f}, "
                  f"{100 * c['frac_conf_gt_0.9']:.1f}% confident.\n")


def fashion_model() -> str:
    return quality("fashion")


# --- speed benchmarks ------------------------------------------------------------------------------

def _timing(r: dict, problem: str, method: str) -> list[float]:
    return [t["ms_median"] for t in r["timing"] if t["problem"] == problem and t["method"] == method]


def _gaps(r: dict, method: str, problem: str = "real") -> dict[float, float]:
    return {g["budget_avg_bits"]: g["gap_vs_exact"] for g in r["gaps"] if g["problem"] == problem and g["method"] == method}


def solver_speed() -> str:
    r = bench("solver_speed")
    t = r["targets"]
    al, syn = t["real: dadq.allocate"], t["synthetic"]
    milp = [g["gap_vs_exact"] for g in r["gaps"] if g["problem"] == "real" and g["method"] == "reference: HiGHS MILP"]
    milp_ms = [x["ms_median"] for x in r["timing"] if x["method"] == "reference: HiGHS MILP"]
    s = r["setup"]
    size = f"{s['groups']} groups × {s['quantizers_synthetic']} quantizers × {len(s['bits'])} widths"
    rows = [[f"Lagrangian re-allocation, {size}", f"{al['lagrangian_worst_ms']:.1f} ms (`dadq.allocate`, worst budget), "
             f"{syn['lagrangian_worst_ms']:.1f} ms on synthetic curves", f"≤ {al['lagrangian_target_ms']:g} ms "
             f"{OK[al['lagrangian_pass'] and syn['lagrangian_pass']]}"],
            ["exact re-allocation, same size", f"{al['exact_worst_ms']:.0f} ms (`dadq.allocate`), {syn['exact_worst_ms']:.0f} ms "
             f"synthetic; HiGHS MILP agrees to ≤ {_pct(max(milp))} and takes {min(milp_ms) / 1e3:.1f}–"
             f"{max(milp_ms) / 1e3:.1f} s", f"≤ {al['exact_target_ms'] / 1e3:g} s {OK[al['exact_pass'] and syn['exact_pass']]}"]]
    lag, gre = _gaps(r, "lagrangian"), _gaps(r, "greedy")
    gap_rows = [[f"{b:g}", _pct(lag[b]), _pct(gre[b])] for b in s["budgets_gap"]]
    return (f"`{_cmd(r['command'])}` → `benchmarks/results/solver_speed.json`\n\n"
            + _table(["what", "result", "target"], rows)
            + "\n\nPredicted distortion above the exact optimum on the shipped profile (W+A, G=10):\n\n"
            + _table(["budget (avg bits)", "lagrangian", "greedy"], gap_rows) + "\n")


def profile_speed() -> str:
    r = bench("profile_speed")
    t, sp, ev, cb = r["targets"], r["speed"], r["exact_vs_naive"], r["compute_before_layer"]
    st = r["setup"]
    gaps = r["fast_allocation_gap_shipped_profile"]
    gap_txt = ", ".join(f"+{100 * g['rel_gap']:.1f}% at {g['budget_avg_bits']:g}" + (" bits" if i == 0 else "")
                        for i, g in enumerate(gaps))
    rows = [["`exact` curves against `naive`", f"max rel. diff {ev['max_rel_diff']:g} over {ev['entries']} entries"
             + (" (bitwise equal)" if ev["bitwise_equal_fraction"] == 1.0 else ""),
             f"{_goal(t['exact_matches_naive']['target'])} {OK[t['exact_matches_naive']['pass']]}"],
            ["`exact` speed-up over `naive`", f"{t['exact_speedup']['value']:.2f}× end to end "
             f"({t['exact_speedup']['profiling_only']:.2f}× profiling only)",
             f"{_goal(t['exact_speedup']['target'])} {OK[t['exact_speedup']['pass']]}"],
            ["`fast` speed-up over `naive`", f"{t['fast_speedup']['value']:.2f}× end to end "
             f"({t['fast_speedup']['profiling_only']:.2f}× profiling only)",
             f"{_goal(t['fast_speedup']['target'])} {OK[t['fast_speedup']['pass']]}"],
            ["`fast` allocation, scored on exact curves", gap_txt, f"{_goal(t['fast_alloc_gap']['target'])} "
             f"{OK[t['fast_alloc_gap']['pass']]}"]]
    ro = r.get("rounding")
    if ro:  # its own run: GPTQ + bias correction against RTN, exact mode
        g = t["gptq_profile_ratio"]
        rows.append([f"GPTQ + bias correction against RTN, exact mode ({ro['setup']['layers_profiled']} layers, "
                     f"G={ro['setup']['groups']}; `{_cmd(ro['command'])}`)", f"{g['value']:.2f}× the time end to end "
                     f"({g['profiling_only']:.2f}× profiling only; per chunk "
                     f"{', '.join(f'{x:.2f}×' for x in ro['chunk_ratios'])}: the machine's load drifts between "
                     "chunks)", f"{_goal(g['target'])} {OK[g['pass']]}"])
    p, ch = sp["profiling_s"], sp["exact_speedup_per_chunk"]
    err = r["fast_curve_error"]["all"]
    return (f"`{_cmd(r['command'])}` → `benchmarks/results/profile_speed.json`\n\n"
            f"The whole default model: {st['layers_profiled']} layers, G={st['groups']}, bits {st['bits'][0]}–"
            f"{st['bits'][-1]}, W+A, {st['calib_per_group']} calibration samples per group.\n\n"
            + _table(["what", "result", "target"], rows)
            + f"\n\nProfiling took naive {p['naive']:.0f} s, exact {p['exact']:.0f} s, fast {p['fast']:.0f} s, each plus "
              f"the same {sp['calibration_s']:.1f} s of calibration. {100 * cb['mac_fraction_before_layer_mean']:.1f}% of "
              f"the MACs lie before the average layer, and timing the skipped prefix predicts "
              f"{cb['predicted_exact_speedup_from_timed_skip']:.2f}× for exact. Per chunk of "
              f"{len(st['layer_names']) // len(ch)} layers the exact speed-up rises with depth, from {ch[0]:.2f}× to "
              f"{ch[-1]:.2f}×. The filled points of `fast` ({', '.join(map(str, r['fast_curve_error']['filled_bits']))} "
              f"bits) have a median relative error of {100 * err['median_rel_err']:.0f}% (p90 "
              f"{100 * err['p90_rel_err']:.0f}%).\n")


def fast_fill() -> str:
    """The allocation gap of fast mode for other choices of measured bit widths (shipped profile)."""
    r = bench("profile_speed")
    var = r["fill_variants_shipped_profile"]
    budgets = var[0]["budgets"]
    rows = []
    for v in var:
        mb = v["measured_bits"]
        label = "{" + ", ".join(map(str, mb)) + "}" if isinstance(mb, list) else mb.replace(",", ", ")
        rows.append([label + (" (default)" if mb == [2, 4, 6] else "")] + [f"{100 * g:.1f}%" for g in v["rel_gap"]])
    return _table(["measured bit widths"] + [f"gap at {b:g} bits" for b in budgets], rows) + "\n"


def sampling_speed() -> str:
    r = bench("sampling_speed")
    s, rv = r["setup"], r["ratios_vs_fp"]
    rows = [[name, f"{rv[k]['median']:.2f}× (per repeat {rv[k]['min']:.2f}–{rv[k]['max']:.2f})",
             f"{_goal(r['targets'][k]['target'])} {OK[r['targets'][k]['pass']]}"]
            for k, name in (("q_wa4", "W+A 4 (lagrangian, per-group)"), ("q_w4", "W 4 (lagrangian, per-group)"))]
    more = [("fp_default_layout", "FP, convolution weights in torch's default layout"),
            ("q_wa4_default_layout", "W+A 4, default layout")]
    for name, w in s.get("w4a8_profiles", {}).items():  # W4A8 over other profiles (--w4a8)
        st = w["settings"]
        ranges = ("ranges per sample at run time" if st.get("act_granularity") == "sample" else
                  "static ranges" + (", one per part of a concatenated input" if st.get("split_concat") else ""))
        more.append((f"w4a8_{name}", f"W4A8 (exact, x_t at FP), {ranges}: `{w['path']}`"))
    for k, name in more:
        if k in rv:
            rows.append([name, f"{rv[k]['median']:.2f}× (per repeat {rv[k]['min']:.2f}–{rv[k]['max']:.2f})", "–"])
    return (f"`{_cmd(r['command'])}` → `benchmarks/results/sampling_speed.json`\n\n"
            f"Sampling time ÷ FP sampling time (FP in channels_last, `dadq.models.use_fast_layout`), {s['n']} images, "
            f"DDIM-{s['steps']}, median of {s['repeats']} interleaved repeats:\n\n"
            + _table(["model", "time ÷ FP", "target"], rows) + "\n")


def quantize_speed() -> str:
    """dadq.quantize time per profile (benchmarks/quantize_speed.py): what a profile's calibration pass adds to the
    first Generate of a model, as time ÷ the first profile's in the same rounds."""
    r = bench("quantize_speed")
    rows = [[k, f"`{x['path']}`", str(x["calib_per_group"]), f"{x['median_s']:.1f} s", f"{x['ratio_to_first']:.2f}×"]
            for k, x in r["profiles"].items()]
    return (f"`{_cmd(r['command'])}` → `benchmarks/results/quantize_speed.json`\n\n"
            f"`dadq.quantize` ({r['allocation']}), {r['repeats']} interleaved repeats on {r['torch_threads']} torch "
            f"thread(s), 1-minute load average {r['loadavg_start'][0]:.1f} at the start (read the ratio: this machine's "
            "seconds vary between runs):\n\n"
            + _table(["profile", "file", "calibration samples per group", "median", f"÷ {r['first']}, median per round"], rows)
            + "\n")


def app() -> str:
    r = bench("app")
    a, g = r["allocate_roundtrip_ms"], r["generate"]
    starts = r["start_to_ready_s_all"]
    rows = [[f"`python app.py` to page ready, median of {len(starts)} start(s)",
             f"{r['start_to_ready_s']:.1f} s ({min(starts):.1f}–{max(starts):.1f} s)", f"≤ {r['start_target_s']:g} s "
             f"{OK[r['start_to_ready_s'] <= r['start_target_s']]}"],
            [f"slider → heatmap round trip (`/allocate` through gradio_client), median of {a['calls']}",
             f"{a['median']:.0f} ms (p90 {a['p90']:.0f} ms)", f"≤ {a['target_ms']:g} ms {OK[a['median'] <= a['target_ms']]}"],
            [f"Generate {g['n']} + {g['n']} at {g['sampler']}, against one FP-only run of {g['n']}",
             f"{g['generate_over_fp_only']:.2f}×", f"≤ {g['target_generate_over_fp_only']:g}× "
             f"{OK[g['generate_over_fp_only'] <= g['target_generate_over_fp_only']]}"],
            ["quantized chain / FP chain inside that Generate", f"{g['server_quantized_over_fp']:.2f}×",
             f"≤ {g['target_quantized_over_fp']:g}× {OK[g['server_quantized_over_fp'] <= g['target_quantized_over_fp']]}"],
            ["the same pair in one process (`dadq.sample_pair`), one chain after the other / side by side",
             f"{g['in_process_pair_sequential_over_fp_only']:.2f}× / {g['in_process_pair_parallel_over_fp_only']:.2f}× "
             "FP-only", "–"]]
    b = r.get("browser_release_to_heatmap_ms")
    if b:
        rows.insert(2, [f"slider release → heatmap redrawn in chromium, median of {b['releases']}",
                        f"{b['median']:.0f} ms (p90 {b['p90']:.0f} ms)", f"≤ {b['target_ms']:g} ms "
                        f"{OK[b['median'] <= b['target_ms']]}"])
    stale_generate = r.get("meta", {}).get("generate_measured_now") is False
    rng = lambda v: f"{min(v):.1f}–{max(v):.1f} s"  # noqa: E731
    return (f"`{APP_BENCH}` → `benchmarks/results/app.json`\n\n"
            + _table(["what", "result", "target"], rows)
            + f"\n\nOne FP chain of {g['n']} alone, on the server's thread count: {g['fp_only_s_median']:.1f} s (median). "
              f"Inside Generate, each chain on one thread beside the other: FP {rng(g['server_fp_s'])}, quantized "
              f"{rng(g['server_quantized_s'])} (per Generate: "
              + ", ".join(f"{q / f:.2f}×" for q, f in zip(g["server_quantized_s"], g["server_fp_s"])) + "). The first "
              f"Generate after the app loads its profile took {g['generate_first_call_s']:.1f} s: it includes the "
              "profile's calibration pass ([quantize](#quantize)), which later allocations reuse."
            + (" The Generate rows were not measured again in this run (`--no-generate`): they are the previous "
               "run's." if stale_generate else "")
            + (f" The run ended at a 1-minute load average of {r['meta']['load_average_1min_at_end']:g} on "
               f"{r['meta']['cpus']} CPUs." if "load_average_1min_at_end" in r.get("meta", {}) else "") + "\n")


def speed_targets() -> str:
    """The README's summary: every speed target with its measured value and the command that measured it."""
    so, pr, sa, ap = bench("solver_speed"), bench("profile_speed"), bench("sampling_speed"), bench("app")
    al, t = so["targets"]["real: dadq.allocate"], pr["targets"]
    wa4 = sa["targets"]["q_wa4"]
    rows = [["re-allocation after a budget change, Lagrangian (G=10, 128 quantizers, 7 widths)",
             f"{al['lagrangian_worst_ms']:.1f} ms", f"≤ {al['lagrangian_target_ms']:g} ms {OK[al['lagrangian_pass']]}",
             f"`{_cmd(so['command'])}`"],
            ["the same, exact solver", f"{al['exact_worst_ms']:.0f} ms", f"≤ {al['exact_target_ms'] / 1e3:g} s "
             f"{OK[al['exact_pass']]}", "same"],
            ["profile, `exact` mode against `naive` (same curves)", f"{t['exact_speedup']['value']:.2f}× faster, "
             f"max rel. diff {t['exact_matches_naive']['value']:g}",
             f"≥ 1.25×, ≤ 1e-4 {OK[t['exact_speedup']['pass'] and t['exact_matches_naive']['pass']]}",
             f"`{_cmd(pr['command'])}`"],
            ["profile, `fast` mode against `naive`; its allocation gap", f"{t['fast_speedup']['value']:.2f}×; "
             f"≤ {100 * t['fast_alloc_gap']['value']:.1f}%", f"≥ 3×; ≤ 5% {OK[t['fast_speedup']['pass'] and t['fast_alloc_gap']['pass']]}",
             "same"],
            *([["profile time, GPTQ + bias correction against round to nearest (8 layers)", f"{g['value']:.2f}×",
                f"≤ 1.5× {OK[g['pass']]}", f"`{_cmd(pr['rounding']['command'])}`"]]
              if (g := t.get("gptq_profile_ratio")) and pr.get("rounding") else []),
            ["quantized / FP sampling time (W+A 4)", f"{wa4['value']:.2f}×", f"≤ 1.3 {OK[wa4['pass']]}",
             f"`{_cmd(sa['command'])}`"],
            ["app start to usable page", f"{ap['start_to_ready_s']:.1f} s", f"≤ {ap['start_target_s']:g} s "
             f"{OK[ap['start_to_ready_s'] <= ap['start_target_s']]}", f"`{APP_BENCH}`"],
            ["slider release → heatmap (API round trip, median)", f"{ap['allocate_roundtrip_ms']['median']:.0f} ms",
             f"≤ 300 ms {OK[ap['allocate_roundtrip_ms']['median'] <= 300]}", "same"]]
    b = ap.get("browser_release_to_heatmap_ms")
    if b:
        rows.append(["slider release → heatmap redrawn in a real browser (median)", f"{b['median']:.0f} ms",
                     f"≤ {b['target_ms']:g} ms {OK[b['median'] <= b['target_ms']]}", "same"])
    return _table(["target (2-core CPU)", "measured", "goal", "command"], rows) + "\n"


def dit() -> str:
    """The class-conditional DiT (issue 20): DADQ against uniform bits, the groups ablation, per-token ranges,
    bits per layer type, from experiments/results/dit.json."""
    from experiments.dit import markdown

    r = load("dit")
    command = re.sub(r" --wait-shipped \d+", "", _cmd(r["command"]))  # waiting for a file changes no number
    return f"`{command}` → `experiments/results/dit.json`\n\n{markdown(r)}\n"


BLOCKS: dict[str, Callable[[], str]] = {
    "headline": headline, "speed_targets": speed_targets, "fid_5k_vs_1k": fid_5k_vs_1k,
    "exact_vs_lagrangian": exact_vs_lagrangian, "bias_shift": bias_shift, "split_concat": split_concat, "split_grid": split_grid, "fp_top": fp_top, "input_precision": input_precision, "trajectory_weights": trajectory_weights, "output_correlation": output_correlation, "group_halves": group_halves, "group_weight_powers": group_weight_powers,
    "activation_cost": lambda: group_halves("activation_cost"), "step_ranges": step_ranges,
    "group_weight_powers_5k": lambda: group_weight_powers("sweep_rounding_5k"),
    "hessian_per_group": lambda: profile_against("sweep_hessian_1k", "grp"),
    "calib32": lambda: profile_against("sweep_calib_1k", "c32"),
    "calib32_seeds": lambda: profile_against("sweep_calib_seeds_1k", "c32"),
    "calib64": lambda: profile_against("sweep_calib64_1k", "c64"),
    "calib_draw": lambda: profile_against("sweep_calib_draw_1k", "c32s7"),
    "calib_draw_seeds": lambda: profile_against("sweep_calib_draw_seeds_1k", "c32s7"),
    "held_out": lambda: profile_against("sweep_held_out_1k", "ho") + "\n" + d_per_width("sweep_held_out_1k"),
    "split_c32": lambda: profile_against("sweep_split32_1k", "c32sp"),
    "bits1": lambda: profile_against("sweep_bits1_1k", "b1") + "\n" + lowest_width_use("sweep_bits1_1k", "ho", "b1"),
    "bits1_5k": lambda: profile_against("sweep_bits1_5k", "b1"),
    "clip_5k": lambda: profile_against("sweep_clip_5k", "clip"),
    "clip_5k_seeds": lambda: profile_against(SEEDS_5K, "clip"),
    "clip_1k": lambda: profile_against("sweep_clip_1k", "clip") + "\n" + against_uniform(
        "sweep_clip_1k", "W 4 exact G=10 clip scope=mean gain^0.5", "W 4 uniform G=10 clip ends@8"),
    "sample_ranges": lambda: profile_against("sweep_act_ranges_1k", "c32ps") + "\n" + d_per_width(
        "sweep_act_ranges_1k", "c32ps", "ranges per sample ÷ split static ranges (the same weights)"),
    "bits1to10": lambda: profile_against("sweep_act_ranges_1k", "b110") + "\n" + profile_against("sweep_act_ranges_1k", "b110ps",
                                                                                             command=False),
    "act_weights": lambda: group_weight_powers(
        "sweep_act_weights_1k", A_GAIN_LABEL, "W4A8: DADQ exact, budget over the mean of the groups, x_t at full "
        "precision, weights' D weighted by the trajectory gain^0.5, over the profile with ranges per sample and "
        "candidate bits 1–10 (b110ps); the activations' D weighted by gain^P (`againP`) or, in the first row, by the "
        "weights' gain^0.5", "gain^0.5") + "\n" + activation_bits_per_group("sweep_act_weights_1k"),
    "calib32_fashion": lambda: profile_against("sweep_calib_fashion_1k", "c32"),
    "variants_5k": variants_5k,
    "gpu_5k": gpu_5k,
    "targets_over_seeds": targets_over_seeds,
    "profile_cifar10": profile_cifar10,
    "weight_grid_1k": lambda: profile_against("sweep_grid_1k", "asym"),
    "weight_grid_5k": lambda: profile_against("sweep_grid_5k", "asym") + "\n" + weight_d_rises("sweep_grid_5k", "c32", "asym"),
    "bits10": lambda: profile_against("sweep_bits10_1k", "b10") + "\n" + largest_activation_d("c32"),
    "group_weight_powers_fashion": lambda: group_weight_powers("sweep_rounding_fashion_1k"), "levers_5k": levers_5k, "rounding_1k": rounding_1k,
    "rounding_1k_fashion": rounding_1k_fashion,
    "default_model": default_model,
    "fashion_model": fashion_model, "solver_speed": solver_speed, "profile_speed": profile_speed,
    "fast_fill": fast_fill, "sampling_speed": sampling_speed, "quantize_speed": quantize_speed, "app": app, "rounding_grid": rounding_grid,
    "bias_out_of_sample": bias_out_of_sample, "gptq_order": gptq_order, "weight_grid": weight_grid, "clip_search": clip_search, "gptq_order_fid": gptq_order_fid, "metric_grid": metric_grid,
    "rounding_grid_fashion": lambda: rounding_grid("sweep_rounding_fashion"), "rounding_5k": rounding_5k, "dit": dit,
}


def block(name: str) -> str:
    """The markdown of one generated block: a summary of ``BLOCKS``, or a sweep result's tables."""
    return BLOCKS[name]() if name in BLOCKS else render(load(name))


def update(text: str, names: list[str] | None = None) -> str:
    """``text`` with every generated block (or only those of ``names``) regenerated from its result."""
    def sub(m):
        if names and m["name"] not in names:
            return m.group(0)
        return m.group(1) + block(m["name"]) + m.group(4)
    return BLOCK.sub(sub, text)


update_readme = update  # the earlier name


def stale_blocks(text: str, names: list[str] | None = None) -> list[str]:
    """Names of the blocks of ``text`` that differ from what their results give now."""
    new = update(text, names)
    return [m["name"] for m, k in zip(BLOCK.finditer(text), BLOCK.finditer(new)) if m.group(0) != k.group(0)]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*", help="blocks to print (no --doc/--check) or to limit the rewrite to")
    p.add_argument("--doc", "--readme", action="append", default=None,
                   help="a markdown file whose blocks to rewrite or check (repeatable; default: docs/results.md "
                        "and README.md)")
    p.add_argument("--check", action="store_true", help="exit 1 if a block differs from its result; write nothing")
    args = p.parse_args(argv)
    if args.names and args.doc is None and not args.check:
        for n in args.names:
            print(block(n))
        return 0
    docs = [Path(d) for d in args.doc] if args.doc else DOCS
    bad = 0
    for path in docs:
        text = path.read_text()
        shown = path.resolve().relative_to(REPO) if path.resolve().is_relative_to(REPO) else path
        count = len(BLOCK.findall(text))
        if args.check:
            stale = stale_blocks(text, args.names or None)
            if stale:
                print(f"{shown}: generated blocks out of date: {', '.join(stale)}; run `{REGENERATE}`",
                      file=sys.stderr)
                bad = 1
            continue
        new = update(text, args.names or None)
        if new != text:
            from dadq.io import write_text
            write_text(path, new)
        print(f"{shown}: {count} generated block(s) up to date")
    return bad


if __name__ == "__main__":
    raise SystemExit(main())
