"""The evidence sweep: allocation methods x budgets on the default model, with distortion, additivity,
paired image quality, a timestep-groups ablation and (a few) FIDs.

    python -m experiments.sweep --quick     # <= 10 min on the 2-core CPU -> experiments/results/sweep_quick.json
    python -m experiments.sweep             # full: 128 paired samples at DDIM-50, 1k-sample FIDs -> sweep.json

Main grid (the shipped profile, G=10, bits 2-8): methods lagrangian, exact, greedy, uniform (quick: no
greedy) x budgets weights-only (A stays FP) 2, 3, 4, 5, 6, 8, joint W+A 4, 5, 6, 8 and W at 4 with A
at 6 and 8 average bits, per-group weights; four cells again with shared weights. Per cell:
  predicted D   mean over groups of the summed per-quantizer distortions (Allocation.predicted)
  measured D    dadq.measure_distortion: all quantizers at once, on the profile's calibration x_t
  paired SSIM/PSNR  FP vs quantized images from identical noise (what dadq.sample_pair does; the FP
                half is sampled once, with the same seed, and shared by all cells), quick: 24 samples
                at DDIM-25; full: 128 at DDIM-25. dadq.metrics.paired_psnr_ssim.
Cells whose allocations are identical (e.g. every method at W8) are evaluated once and reused.
Additivity: Pearson correlation of predicted vs measured over all cells (linear and log-log), and
the mean / median ratio measured / predicted.

Groups ablation: profiles with G = 1, 2, 7, 10 (quick: 1, 2, 10) built here with one recipe for all
(quick: calib_per_group=4, mode='fast'; full: 16, 'exact'); at W+A 4 and 6 bits (quick: 4), methods
exact and uniform: paired SSIM. 'uniform, G=10' is uniform bits with per-group activation ranges; 'uniform,
G=1' is uniform bits with one activation range for all timesteps.

FID (labelled dadq.metrics.FID_LABEL: MNIST-classifier features, not Inception): quick: W+A 4-bit
exact vs uniform vs FP at 256 samples, DDIM-25; full: headline rows at 1k samples, DDIM-50, FP of the
same sampler and seeds beside them.

Resuming: a full run costs hours of CPU. Finished cells (grid cells, ablation cells, FID rows) go to
experiments/results/<name>.cells.json as they end, keyed by the model fingerprint, a digest of the
profile, the allocation, sampler, n and seed; the ablation profiles go to results/profiles/<name>/.
``--max-minutes M`` starts no new cell after M minutes and writes what is done; the same command run
again resumes there.

    python -m experiments.sweep --max-minutes 90     # repeat until the result says "complete": true

Plots (PNG through kaleido where a browser is available, always HTML): paired SSIM vs average bits
per method; predicted vs measured distortion; groups-ablation bars; the 4-bit allocation heatmap.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from dadq.allocate import METHODS
from dadq.parallel import side_by_side

from experiments.cells import CellCache, Deadline, OutOfTime, allocation_digest, digest, profile_digest
from benchmarks.common import (EXPERIMENT_RESULTS, add_common_args, command_line, get_profile, jsonable, load_model, loadavg,
                               machine_facts, print_table, profile_path, result_path, save_figure, setup_threads,
                               shown_path, write_result)
from experiments.report import groups_fid
from experiments.trajectory_weights import GAIN_SETTINGS

# (target, budget): "w" weights only, "wa" joint W+A, "w4a" separate budgets: W at 4 bits, A at `budget`
GRID = [("w", 2.0), ("w", 3.0), ("w", 4.0), ("w", 5.0), ("w", 6.0), ("w", 8.0), ("wa", 4.0), ("wa", 5.0), ("wa", 6.0),
        ("wa", 8.0), ("w4a", 6.0), ("w4a", 8.0)]
# weight_mode "shared" (one weight copy for all groups) at these cells; the grid above is per-group
SHARED_CELLS = [("wa", 4.0, "exact"), ("wa", 6.0, "exact"), ("w", 4.0, "exact"), ("wa", 4.0, "lagrangian")]
ABLATION_G = (1, 2, 7, 10)  # 7 does not divide T=1000: uneven groups
ABLATION_BUDGETS = (4.0, 6.0)
ABLATION_METHODS = ("exact", "uniform")
# --quick keeps every budget and question but drops what costs most and says least: greedy (its
# paired SSIM stays within a few thousandths of exact's), G=7 and the 6-bit ablation cells (the
# ablation profiles dominate the run time), and uses 24 paired samples, not 32. The grid and the
# ablation profiles run side by side on CPUs with >= 2 threads.
QUICK_METHODS = ("lagrangian", "exact", "uniform")
# Images per sampling batch. DDIM at eta 0 gives the same images at any batch (up to float rounding); smaller
# batches keep a layer's activations in the CPU's cache, where the fake quantization passes over them.
SAMPLE_BATCH = 64
QUICK_ABLATION_G = (1, 2, 10)
QUICK_ABLATION_BUDGETS = (4.0,)
QUICK_LIMIT_S = 600.0


def sample_batch(sw) -> int:
    """Samples per batch: --sample-batch (a GPU takes thousands at once), else SAMPLE_BATCH. DDIM with eta 0
    draws all its noise up front, so the images do not depend on it."""
    return getattr(sw.args, "sample_batch", None) or SAMPLE_BATCH


def device_key(sw) -> tuple[str, ...]:
    """The device in a cell key, for cells sampled off the CPU: float rounding differs between devices, so a
    GPU's FID never stands in for a CPU one. Empty on the CPU, which keeps every earlier key valid."""
    dev = torch.device(getattr(sw.args, "device", None) or sw.model.device.type).type
    return () if dev == "cpu" else (f"device={dev}",)


class Sweep:
    """The model, its profile, the finished-cell cache and the deadline, shared by every part."""

    def __init__(self, args, model, prof, cache: CellCache | None = None, deadline: Deadline | None = None,
                 profile_dir: Path | None = None):
        import dadq

        self.dadq = dadq
        self.args = args
        self.model = model
        self.prof = prof
        self.cache = cache or CellCache(None)
        self.deadline = deadline or Deadline(None)
        self.profile_dir = profile_dir
        self._fp = {}
        # FP samples of paired rows, shared by the processes and slices of one cell cache (not committed: large)
        self.fp_dir = None if cache is None or cache.path is None else Path(str(cache.path).removesuffix(".cells.json") + ".fp")
        self.profiles = {}  # name -> Profile: --profiles, for FID rows that name one
        self._q_last = None  # the last quantized samples of ``paired`` (an FID row scores them too)

    def fp_images(self, n, steps, seed=0):
        """FP samples (n, DDIM-``steps``, ``seed``): from memory, from ``fp_dir`` (another process or an
        earlier slice of the same cache drew them), or drawn now and stored there."""
        key = (n, steps, seed)
        if key not in self._fp:
            path = self.fp_path(n, steps, seed)
            if path is not None and path.exists():
                from safetensors.torch import load_file

                self._fp[key] = load_file(path)["images"]
            else:
                self._fp[key] = self.dadq.sample(self.model, n=n, steps=steps, seed=seed, desc="FP sampling",
                                                batch_size=sample_batch(self))
                if path is not None:
                    self.store_fp(path, self._fp[key])
        return self._fp[key]

    def fp_path(self, n, steps, seed) -> Path | None:
        """Where FP samples (n, DDIM-``steps``, ``seed``) of this model on this device are kept; None: nowhere."""
        if self.fp_dir is None:
            return None
        dev = "".join(f"_{k.partition('=')[2]}" for k in device_key(self))
        return self.fp_dir / f"fp_{self.model.fingerprint()[:12]}{dev}_n{n}_ddim{steps}_seed{seed}.safetensors"

    @staticmethod
    def store_fp(path: Path, images: torch.Tensor) -> None:
        from safetensors.torch import save_file

        from dadq.io import atomic_path

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file({"images": images.contiguous()}, str(tmp))

    def paired(self, qmodel, n, steps, seed=0) -> dict:
        """FP vs quantized from identical noise (dadq.sample with one seed, as dadq.sample_pair does)."""
        from dadq.metrics import paired_psnr_ssim

        fp = self.fp_images(n, steps, seed)
        q = self._q_last = self.dadq.sample(qmodel, n=n, steps=steps, seed=seed, desc="quantized sampling",
                                            batch_size=sample_batch(self))
        psnr, ssim = paired_psnr_ssim(fp, q)
        fin = psnr[np.isfinite(psnr)]
        return {"paired_ssim_mean": float(ssim.mean()), "paired_ssim_std": float(ssim.std()),
                "paired_ssim_min": float(ssim.min()),
                "paired_psnr_mean_finite": float(fin.mean()) if fin.size else float("inf"),
                "paired_psnr_median": float(np.median(psnr)), "identical_images": int((~np.isfinite(psnr)).sum())}


def allocate_cell(dadq, prof, target, budget, method, weight_mode="per-group", scope=None, fp_top=False,
                  fp_input=False, group_weights=None):
    kw = dict(method=method, weight_mode=weight_mode, budget_scope=scope, fp_top=fp_top, fp_input=fp_input,
              group_weights=group_weights)
    if target == "w4a":
        return dadq.allocate(prof, w_budget=4.0, a_budget=budget, target="wa", **kw)
    return dadq.allocate(prof, budget=budget, target=target, **kw)


def pearson(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def main_grid(sw: Sweep, n, steps, log, methods=METHODS) -> list[dict]:
    dadq, prof, model = sw.dadq, sw.prof, sw.model
    pd = profile_digest(prof)
    rows = []
    cells = [(t, b, m, "per-group") for t, b in GRID for m in methods] + [(t, b, m, "shared") for t, b, m in SHARED_CELLS]
    for target, budget, method, weight_mode in cells:
        row = {"target": target, "budget": budget, "method": method, "weight_mode": weight_mode}
        t0 = time.perf_counter()
        try:
            a = allocate_cell(dadq, prof, target, budget, method, weight_mode)
        except ValueError as e:
            row["error"] = str(e)
            rows.append(row)
            log(f"{target} {budget:g} {method}: {e}")
            continue
        row["allocate_s"] = time.perf_counter() - t0
        s = a.summary()
        row.update({"avg_bits_used": s["mean_group_avg_bits"], "predicted_D": s["predicted_distortion_mean"],
                    "predicted_D_per_group": a.predicted.tolist(), "stored_weight_MB": s["stored_weight_MB"],
                    "compression_x": s["compression_x"]})
        # identical allocations (e.g. every method at W8) are evaluated once, in this run or an earlier one
        key = CellCache.key("grid", pd, allocation_digest(a), f"n{n}", f"ddim{steps}", "seed0")
        ev = sw.cache.get(key)
        if ev is not None:
            row.update(ev)
            # a cell evaluated for itself in an earlier slice is not a reuse: additivity counts it
            if ev["_from"] != f"{target} {budget:g} {method}":
                row["reused_from"] = ev["_from"]
        else:
            sw.deadline.check(f"grid cell {target} {budget:g} {method}")
            t1 = time.perf_counter()
            q = dadq.quantize(model, prof, a)
            meas = dadq.measure_distortion(model, prof, a, qmodel=q)
            ev = {"measured_D": float(meas.mean()), "measured_D_per_group": meas.tolist()}
            ev.update(sw.paired(q, n, steps))
            ev["eval_s"] = time.perf_counter() - t1
            ev["_from"] = f"{target} {budget:g} {method}"
            sw.cache.put(key, ev)
            row.update(ev)
        row.pop("_from", None)
        rows.append(row)
        log(f"{target.upper():>3} {budget:g} {method:<10} {weight_mode:<9} bits {row['avg_bits_used']:.3f}"
            f"  pred {row['predicted_D']:.4g}"
            f"  meas {row['measured_D']:.4g}  SSIM {row['paired_ssim_mean']:.4f}"
            + ("  (reused)" if "reused_from" in row else f"  [{row.get('eval_s', 0):.1f} s]"))
    return rows


def additivity_summary(rows) -> dict:
    ok = [r for r in rows if "measured_D" in r and "reused_from" not in r]
    out = {}
    # predicted and measured are sums over the same quantizers only within one target
    for name, sel in (("all", ok), ("w", [r for r in ok if r["target"] == "w"]),
                      ("wa", [r for r in ok if r["target"] == "wa"])):
        p = np.array([r["predicted_D"] for r in sel])
        m = np.array([r["measured_D"] for r in sel])
        pg = np.concatenate([r["predicted_D_per_group"] for r in sel]) if sel else np.zeros(0)
        mg = np.concatenate([r["measured_D_per_group"] for r in sel]) if sel else np.zeros(0)
        pos = (p > 0) & (m > 0)
        ratio = m[p > 0] / p[p > 0]
        out[name] = {
            "cells": len(sel), "pearson": pearson(p, m), "pearson_log": pearson(np.log(p[pos]), np.log(m[pos])),
            "pearson_per_group_points": pearson(pg, mg),
            "mean_ratio_measured_over_predicted": float(ratio.mean()) if ratio.size else None,
            "median_ratio_measured_over_predicted": float(np.median(ratio)) if ratio.size else None,
            "min_ratio": float(ratio.min()) if ratio.size else None, "max_ratio": float(ratio.max()) if ratio.size else None,
        }
    out["note"] = ("over distinct allocations (cells with identical bits counted once); predicted and measured are "
                   "means over the 10 groups; per_group_points pairs every group of every cell")
    return out


def ablation_profiles(sw: Sweep, calib, mode, log, group_counts=ABLATION_G) -> tuple[dict, dict]:
    """The ablation's profiles {G: Profile} and their build times {G: seconds}, one recipe for all G."""
    profiles, prof_s = {}, {}
    for G in group_counts:
        # kept as files beside the results when the cell cache is on: exact ones cost minutes each
        path = None if sw.profile_dir is None else (
            sw.profile_dir / f"G{G}_{mode}_calib{calib}_{sw.model.fingerprint()[:12]}.safetensors")
        same_recipe = (G == sw.prof.num_groups and sw.prof.meta.get("mode") == mode and sw.prof.bits.tolist() == list(
            range(2, 9)) and sw.prof.meta.get("calib_per_group") == calib and sw.prof.meta.get("seed", 0) == 0)
        if same_recipe:  # the shipped profile was built this way already
            profiles[G], prof_s[G] = sw.prof, float(sw.prof.meta.get("seconds", float("nan")))
            log(f"ablation profile G={G} ({mode}, calib {calib}): the main profile (same recipe)")
            continue
        if path is not None and path.exists():
            profiles[G] = sw.dadq.Profile.load(path)
            profiles[G].check_model(sw.model)
            prof_s[G] = float(profiles[G].meta.get("seconds", float("nan")))
            log(f"ablation profile G={G} ({mode}, calib {calib}): loaded {path.name} (built in {prof_s[G]:.0f} s)")
            continue
        sw.deadline.check(f"ablation profile G={G}")
        t0 = time.perf_counter()
        profiles[G] = sw.dadq.profile(sw.model, groups=G, bits=range(2, 9), calib_per_group=calib, mode=mode, seed=0)
        prof_s[G] = time.perf_counter() - t0
        if path is not None:
            profiles[G].save(path)
        log(f"ablation profile G={G} ({mode}, calib {calib}): {prof_s[G]:.0f} s")
    return profiles, prof_s


def groups_ablation(sw: Sweep, n, steps, calib, mode, log, group_counts=ABLATION_G,
                    budgets=ABLATION_BUDGETS, built=None) -> dict:
    """Paired SSIM per G, budget and method; ``built``: ablation_profiles' result when made already."""
    dadq, model = sw.dadq, sw.model
    profiles, prof_s = built if built is not None else ablation_profiles(sw, calib, mode, log, group_counts)
    rows = []
    for G in group_counts:
        pg = profiles[G]
        pd = profile_digest(pg)
        for b in budgets:
            for method in ABLATION_METHODS:
                a = dadq.allocate(pg, budget=b, target="wa", method=method)
                row = {"G": G, "budget": b, "target": "wa", "method": method,
                       "avg_bits_used": float(np.mean(a.group_avg_bits)), "predicted_D": float(np.mean(a.predicted)),
                       "label": (f"uniform bits, {'per-group' if G > 1 else 'one'} activation range"
                                 f"{'s' if G > 1 else ''} (G={G})" if method == "uniform" else f"{method}, G={G}")}
                key = CellCache.key("ablation", pd, allocation_digest(a), f"n{n}", f"ddim{steps}", "seed0")
                ev = sw.cache.get(key)
                if ev is None:
                    sw.deadline.check(f"ablation cell G={G} WA{b:g} {method}")
                    ev = sw.paired(dadq.quantize(model, pg, a), n, steps)
                    sw.cache.put(key, ev)
                row.update(ev)
                rows.append(row)
                log(f"ablation G={G:>2} WA{b:g} {method:<8} SSIM {row['paired_ssim_mean']:.4f}")
    return {"profiles": {str(G): {"mode": mode, "calib_per_group": calib, "seconds": prof_s[G],
                                  "fingerprint": profiles[G].fingerprint} for G in group_counts},
            "rows": rows, "_profiles": profiles}


def reference_id(reference) -> str:
    """The FID reference in a cell key: 'default', or the digest of the reference images; for a dataset's
    statistics file (dadq.metrics.dataset_reference), the digest of that test split's images, as the cells
    of runs that passed the images themselves were keyed."""
    if isinstance(reference, str):
        return reference
    if isinstance(reference, (os.PathLike, Path)):
        from dadq.data import load_dataset, to_model_range
        from dadq.metrics import load_reference_stats

        meta = load_reference_stats(reference)["metadata"]
        return digest(to_model_range(load_dataset(meta["dataset"], meta.get("split", "test"))[0]))
    return digest(reference.numpy())


def fid_rows(sw: Sweep, configs, n, steps, seeds, reference, log, out: list | None = None) -> list[dict]:
    """FID of FP and of each (target, budget, method, profile) allocation, same sampler and seeds; one row
    per seed, appended to ``out`` as each seed ends (so a caller keeps them when the deadline stops the run).

    ``configs`` may hold the string ``"fp"`` to place the FP row (default: first). A second process that
    shares the cell cache can so start on a quantized row while the first one computes FP: the FP FID
    is attached to each quantized row once the seed's rows are all known, not stored in its cell."""
    from dadq.metrics import FID_LABEL

    dadq = sw.dadq
    ref_id = reference_id(reference)
    model_fp = sw.model.fingerprint()
    out = [] if out is None else out
    order = list(configs) if "fp" in configs else ["fp", *configs]
    # the allocations and the digests in their keys do not depend on the seed: made once
    allocs = []
    for c in order:
        if c == "fp":
            allocs.append(c)
            continue
        target, budget, method, prof, *rest = c
        opts = rest[0] if rest else {}
        gain = sweep_gain(sw, prof) if GAIN_POWERS & set(opts) else None
        a = config_allocation(dadq, target, budget, method, prof, opts, gain)
        allocs.append((target, budget, method, prof, opts, a, profile_digest(prof), allocation_digest(a)))
    paired = getattr(sw.args, "fid_paired", False)
    stopped = None  # past the deadline, rows already in the cache are still collected; the first miss is re-raised
    for seed in seeds:
        where = f"ref={ref_id}", f"n{n}", f"ddim{steps}", f"seed{seed}", *device_key(sw)
        fp_key = CellCache.key("fid-fp", model_fp, *where)
        fp_row, quantized = None, []
        try:
            for c in allocs:
                try:
                    if c == "fp":
                        fp_row = fid_cell(sw, fp_key, f"FID FP seed {seed}", lambda: sw.model, n, steps, seed,
                                          reference, f"FID: FP sampling (seed {seed})",
                                          {"row": "FP", "avg_bits_used": 32.0}, keep_fp=paired)
                        log(f"{FID_LABEL}: FP {fp_row['fid']:.3f} (n={n}, DDIM-{steps}, seed {seed})")
                        continue
                    target, budget, method, prof, opts, a, pd, ad = c
                    s = prof.settings()
                    label = config_label(target, budget, method, prof, opts)
                    # paired rows have their own key: an FID-only cell of the same allocation lacks the SSIM
                    key = CellCache.key("fid", pd, ad, *where, *(("paired",) if paired else ()))
                    row = fid_cell(sw, key, f"FID {label} seed {seed}", lambda: dadq.quantize(sw.model, prof, a), n,
                                   steps, seed, reference, "FID: quantized",
                                   {"row": label, "target": target, "budget": budget, "method": method,
                                    "G": prof.num_groups, "avg_bits_used": float(np.mean(a.group_avg_bits)),
                                    **kind_avg_bits(a), "profile": opts.get("profile", "main"),
                                    "rounding": s["rounding"], "bias_correction": s["bias_correction"],
                                    "budget_scope": a.budget_scope, "ends_bits": opts.get("ends"),
                                    "group_weights_gain_power": opts.get("gain_power"),
                                    **({"group_weights_a_gain_power": opts["a_gain_power"]}
                                       if "a_gain_power" in opts else {}),
                                    "predicted_D": float(np.mean(a.predicted))},
                                   paired_with=paired)
                except OutOfTime as stop:
                    stopped = stopped or stop
                    continue
                # stored size depends on the rounding (per-group Hessians keep a copy per group): from the allocation,
                # not the cell, so rows cached before it was recorded carry it too
                row = {**row, "stored_weight_MB": a.stored_weight_bits / 8e6}
                quantized.append(row)
                fp_note = "" if fp_row is None else f"FP {fp_row['fid']:.3f}, "
                ss = f", paired SSIM {row['paired_ssim_mean']:.4f}" if "paired_ssim_mean" in row else ""
                log(f"{FID_LABEL}: {row['row']} {row['fid']:.3f} ({fp_note}seed {seed}{ss})")
        finally:  # on a deadline, keep the finished rows whose FP is known; the others stay in the cache
            fp_row = fp_row or sw.cache.get(fp_key)
            if fp_row is not None:
                out.append(fp_row)
                out.extend({**r, "fp_fid_same_sampler_and_seeds": fp_row["fid"]} for r in quantized)
    if stopped is not None:
        raise stopped
    return out


def sweep_gain(sw: Sweep, prof) -> np.ndarray:
    """float [G]: ``dadq.trajectory_gain`` of the sweep's model over ``prof``'s timestep groups (GAIN_SETTINGS),
    from the cell cache or measured now and stored there (a few minutes: G + 1 sampling runs)."""
    key = CellCache.key("trajectory-gain", sw.model.fingerprint(), "/".join(prof.groups.labels()),
                        *(f"{k}{v:g}" for k, v in GAIN_SETTINGS.items()))
    cached = sw.cache.get(key)
    if cached is None:
        sw.deadline.check("trajectory gain")
        cached = {"gain": sw.dadq.trajectory_gain(sw.model, prof.groups, **GAIN_SETTINGS).tolist(),
                  "group_labels": prof.groups.labels(), **GAIN_SETTINGS}
        sw.cache.put(key, cached)
    return np.asarray(cached["gain"], float)


def fid_cell(sw: Sweep, key: str, what: str, make_model, n, steps, seed, reference, desc: str, row: dict,
             keep_fp: bool = False, paired_with: bool = False) -> dict:
    """One FID row from the cell cache, or sampled (n samples, DDIM-``steps``, ``seed``) and stored there.
    ``make_model()`` gives the model to sample (a quantized model is built only on a miss);
    ``row``: the fields that name the row. keep_fp: these are the FP samples, kept in memory for
    paired rows; paired_with: add paired SSIM/PSNR against the FP samples of the same noise
    (``Sweep.paired``'s fields; the FP samples are drawn here if this run has not kept them)."""
    from dadq.metrics import FID_LABEL

    cached = sw.cache.get(key)
    if cached is not None:
        return cached
    sw.deadline.check(what)
    t0 = time.perf_counter()
    model = make_model()
    if paired_with:
        ev = sw.paired(model, n, steps, seed)
        x = sw._q_last
    else:
        x = sw.dadq.sample(model, n=n, steps=steps, seed=seed, desc=desc, batch_size=sample_batch(sw))
    if keep_fp and (n, steps, seed) not in sw._fp:
        sw._fp[(n, steps, seed)] = x
        if sw.fp_dir is not None:
            sw.store_fp(sw.fp_path(n, steps, seed), x)
    row = {**row, "fid": sw.dadq.fid(x, reference=reference), "label": FID_LABEL, "n": n, "sampler": f"DDIM-{steps}",
           "seed": seed, "device": sw.model.device.type,
           **({"gpu": torch.cuda.get_device_name(sw.model.device)} if sw.model.device.type == "cuda" else {}),
           "seconds": time.perf_counter() - t0, **(ev if paired_with else {})}
    sw.cache.put(key, row)
    return row


# the layers that read the image and write eps: PTQ baselines (Q-Diffusion, PTQ4DM) keep them at 8 bits
END_LAYERS = ("conv_in", "conv_out")


GAIN_POWERS = {"gain_power", "a_gain_power"}  # the options that weight groups by the trajectory gain
GAIN_OPTION = r"(a?)gain(\d+(?:\.\d+)?)"  # gainP: each group's D weighted by its trajectory gain ** P; againP: activations


def _option_word(tok: str) -> bool:
    """True for the words --fid-configs reads as options (and 'fp', the FP row), which no profile may be named."""
    return (tok in ("fp", "mean", "group", "fptop", "fpin") or re.fullmatch(r"ends\d+", tok) is not None
            or re.fullmatch(GAIN_OPTION, tok) is not None)


def fid_configs(text: str, prof, profiles: dict | None = None) -> list:
    """``--fid-configs``: 'target:budget:method[:option...]' entries and optionally 'fp', comma-separated.

    Options (any order): a profile name from ``--profiles NAME=PATH`` (default: ``prof``, the main
    profile); ``mean`` or ``group`` (dadq.allocate's budget_scope; default group); ``endsN`` (the
    first and last layers, END_LAYERS, pinned at N bits after allocating: dadq.allocate.pin_bits);
    ``fptop`` (full precision offered as the top point of every curve: dadq.allocate's fp_top); ``fpin``
    (the model input x_t kept at full precision: dadq.allocate's fp_input); ``gainP`` (each group's D weighted by
    its trajectory gain to the power P, ``sweep_gain``: dadq.allocate's group_weights; e.g. gain0.25); ``againP``
    (the activations' D weighted by gain ** P instead, their own group weights; e.g. gain0.5:again0).
    Each quantized config is (target, budget, method, profile, options dict)."""
    profiles = profiles or {}
    configs = []
    for c in text.split(","):
        parts = c.strip().split(":")
        if parts == ["fp"]:
            configs.append("fp")
            continue
        if len(parts) < 3:
            raise SystemExit(f"--fid-configs: {c!r} is not target:budget:method (e.g. wa:4:exact) or 'fp'.")
        t, b, m, *extra = parts
        try:
            b = float(b)
        except ValueError:
            raise SystemExit(f"--fid-configs: {c!r} is not target:budget:method (e.g. wa:4:exact) or 'fp'.") from None
        opts, use = {}, prof
        for tok in extra:
            if tok in profiles:
                opts["profile"], use = tok, profiles[tok]
            elif tok in ("mean", "group"):
                opts["scope"] = tok
            elif re.fullmatch(r"ends\d+", tok):
                opts["ends"] = int(tok[4:])
            elif tok == "fptop":
                opts["fp_top"] = True
            elif tok == "fpin":
                opts["fp_input"] = True
            elif m_gain := re.fullmatch(GAIN_OPTION, tok):
                opts["a_gain_power" if m_gain.group(1) else "gain_power"] = float(m_gain.group(2))
            else:
                raise SystemExit(f"--fid-configs: option {tok!r} of {c!r} is none of: a profile name from --profiles "
                                 f"({', '.join(profiles) or 'none given'}), mean, group, endsN (e.g. ends8), fptop, fpin, "
                                 "gainP (e.g. gain0.25), againP.")
        configs.append((t, b, m, use, opts))
    return configs


def parse_profiles(text: str | None, model) -> dict:
    """``--profiles NAME=PATH,...`` -> {name: Profile}, each checked against ``model``."""
    import dadq

    out = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, path = item.partition("=")
        if not sep or not name or _option_word(name):
            raise SystemExit(f"--profiles: {item!r} is not NAME=PATH with a NAME other than fp, fptop, fpin, mean, group, endsN, gainP.")
        if not Path(path).exists():
            raise SystemExit(f"--profiles: {path} does not exist; build it first (python -m scripts.build_default_profile "
                             "--out PATH ...).")
        out[name] = dadq.Profile.load(path)
        out[name].check_model(model)
    return out


def config_allocation(dadq, target, budget, method, prof, opts, gain=None):
    """The allocation of one FID config: ``allocate_cell`` with the options' budget scope (and group weights
    ``gain ** opts['gain_power']``, gain: float [G]; the activations' ``gain ** opts['a_gain_power']`` where given),
    then the first/last layers pinned where ``opts['ends']`` asks."""
    from dadq.allocate import pin_bits

    powers = {k: opts.get(f"{p}gain_power", opts.get("gain_power")) for k, p in (("w", ""), ("a", "a_"))}
    weights = None if all(v is None for v in powers.values()) else {
        k: None if v is None else np.asarray(gain, float) ** v for k, v in powers.items()}
    a = allocate_cell(dadq, prof, target, budget, method, scope=opts.get("scope"), fp_top=opts.get("fp_top", False),
                      fp_input=opts.get("fp_input", False), group_weights=weights)
    return pin_bits(a, prof, END_LAYERS, opts["ends"]) if opts.get("ends") else a


def config_label(target, budget, method, prof, opts) -> str:
    """'W 4 exact G=10', with the options appended: ' gptq', ' scope=mean', ' ends@8'."""
    label = f"{target.upper()} {budget:g} {method} G={prof.num_groups}"
    if opts.get("profile"):
        label += f" {opts['profile']}"
    if opts.get("scope") == "mean":
        label += " scope=mean"
    if opts.get("ends"):
        label += f" ends@{opts['ends']}"
    if opts.get("fp_top"):
        label += " fp-top"
    if opts.get("fp_input"):
        label += " fp-input"
    if "gain_power" in opts:
        label += f" gain^{opts['gain_power']:g}"
    if "a_gain_power" in opts:
        label += f" A gain^{opts['a_gain_power']:g}"
    return label


def profile_facts(prof, path=None) -> dict:
    """Which profile a result used: its file, settings (rounding, bias correction, metric, split concat),
    recipe, build time and the command that rebuilds it."""
    m = prof.meta
    return {**({"path": shown_path(path)} if path is not None else {}), **prof.settings(),
            "groups": prof.num_groups, "bits": prof.bits.tolist(), "calib_per_group": m.get("calib_per_group"),
            "mode": m.get("mode"), "seconds": m.get("seconds"), "threads": m.get("threads"),
            "command": m.get("command"), "digest": profile_digest(prof)}


@torch.no_grad()
def profiled_weights_check(dadq, model, prof, layer: str = "conv_out", bits: int = 4, group: int = 0) -> dict:
    """DESIGN: quantized sampling uses exactly the weights that were profiled. dadq.quantize rebuilds
    them (GPTQ, bias correction) from the profile's calibration inputs; with only ``layer``'s weights
    of ``group`` at ``bits``, the measured D on that group's calibration inputs must equal the profiled
    point d_w[group, layer, bits] (exact-mode profiles), and every other group's D must be 0."""
    import dataclasses

    from dadq.allocate import chosen_distortion

    a = dadq.allocate(prof, budget=float(prof.bits.max()), target="w", method="uniform")
    li, m = prof.layer_names.index(layer), list(prof.bits).index(bits)
    w = np.full_like(a.w_bits, 32)
    w[group, li] = bits
    a = dataclasses.replace(a, w_bits=w, d_w=chosen_distortion(prof.d_w, prof.bits, w))
    measured = dadq.measure_distortion(model, prof, a)
    profiled = float(prof.d_w[group, li, m])
    rel = abs(measured[group] - profiled) / max(profiled, 1e-12)
    return {"layer": layer, "bits": bits, "group": group, "settings": prof.settings(), "profiled_D": profiled,
            "measured_D": float(measured[group]), "relative_difference": float(rel),
            "other_groups_max_D": float(np.delete(measured, group).max()), "pass": bool(rel < 1e-3)}


def kind_avg_bits(a) -> dict:
    """Mean over groups of the average weight and activation bits (32 where a kind stays FP)."""
    w = (a.w_bits * a.w_numel[None, :]).sum(1) / a.w_numel.sum()
    x = (a.a_bits * a.a_numel[None, :]).sum(1) / a.a_numel.sum()
    return {"w_avg_bits": float(w.mean()), "a_avg_bits": float(x.mean())}


def fid_summary(rows) -> list[dict]:
    """Mean and spread (min..max, std) over seeds per row label."""
    out = []
    for label in dict.fromkeys(r["row"] for r in rows):
        sel = [r for r in rows if r["row"] == label]
        f = np.array([r["fid"] for r in sel])
        fp = np.array([r.get("fp_fid_same_sampler_and_seeds", r["fid"]) for r in sel])
        out.append({"row": label, "seeds": [r["seed"] for r in sel], "fid_mean": float(f.mean()),
                    "fid_std": float(f.std(ddof=1)) if len(f) > 1 else 0.0, "fid_min": float(f.min()),
                    "fid_max": float(f.max()), "fp_fid_mean": float(fp.mean()),
                    "fid_over_fp": float(f.mean() / fp.mean()), "n": sel[0]["n"], "sampler": sel[0]["sampler"],
                    "avg_bits_used": sel[0]["avg_bits_used"]})
    return out


@dataclass
class Plan:
    """What one sweep run measures: paired-sample, ablation and FID settings (quick or full)."""
    args: argparse.Namespace
    quick: bool
    n: int
    steps: int
    fid_n: int
    fid_steps: int
    fid_seeds: list[int]
    ab_calib: int
    ab_mode: str


def previous_slices(out_json: Path, cache: CellCache, name: str) -> list[dict]:
    """The earlier slices of this result, oldest first: those recorded in an earlier result file of the
    same name, and those the shared cell cache keeps for this name (a second process with its own
    ``--out`` records its slice only there). Slices that computed nothing (e.g. ``--max-minutes 0``
    rewrites) are left out."""
    try:
        old = json.loads(out_json.read_text()).get("slices", [])
    except (OSError, ValueError):
        old = []
    old += [s for s in cache.slices.values() if s.get("name") == name]
    seen, out = set(), []
    for s in sorted(old, key=lambda s: s.get("utc_start", "")):
        key = (s.get("command"), s.get("utc_start"))
        if s.get("cells_computed") and key not in seen:
            seen.add(key)
            out.append({k: v for k, v in s.items() if k != "name"})
    return out


def run_parts(sw: Sweep, plan: Plan, result: dict, save, log) -> None:
    """1. the main grid (with the ablation's profiles beside it), 2. the groups ablation, 3. FID rows;
    each part's results go into ``result`` and are saved as soon as it ends."""
    quick, n, steps, prof = plan.quick, plan.n, plan.steps, sw.prof
    fid_n, fid_steps, fid_seeds, ab_calib, ab_mode = plan.fid_n, plan.fid_steps, plan.fid_seeds, plan.ab_calib, plan.ab_mode
    # 1. main grid, and the ablation's profiles beside it: both are independent, and on a CPU two
    # 1-thread jobs at once beat two 2-thread jobs in a row (dadq.parallel)
    methods = QUICK_METHODS if quick else METHODS
    ab_g, ab_b = (QUICK_ABLATION_G, QUICK_ABLATION_BUDGETS) if quick else (ABLATION_G, ABLATION_BUDGETS)
    built = None
    if plan.args.no_grid:
        rows = []
    elif plan.args.no_ablation or sw.model.device.type != "cpu" or torch.get_num_threads() < 2:
        rows = main_grid(sw, n, steps, log, methods)
    else:
        rows, built = side_by_side(lambda: main_grid(sw, n, steps, log, methods),
                                   lambda: ablation_profiles(sw, ab_calib, ab_mode, log, ab_g))
    if rows:
        result["cells"] = rows
        result["additivity"] = additivity_summary(rows)
        save()

    # 2. groups ablation
    ab = None
    if not plan.args.no_ablation:
        ab = groups_ablation(sw, n, steps, ab_calib, ab_mode, log, ab_g, ab_b, built)
        ab_profiles = ab.pop("_profiles")
        result["groups_ablation"] = ab
        save()

    # 3. FID
    if fid_n:
        from dadq.metrics import dataset_reference

        reference = dataset_reference(plan.args.dataset)
        result["setup"]["fid_reference"] = f"{plan.args.dataset} test set, 10k images"
        configs = [("wa", 4.0, "exact", prof), ("wa", 4.0, "uniform", prof)] if quick else [
            (t, b, m, prof) for t, b in (("w", 4.0), ("wa", 4.0), ("wa", 6.0)) for m in ("exact", "lagrangian", "uniform")]
        if plan.args.fid_configs:
            configs = fid_configs(plan.args.fid_configs, prof, sw.profiles)
        elif not quick and ab is not None:  # the groups question at W+A 4 bits decided by FID, not only SSIM
            configs += [("wa", 4.0, "exact", ab_profiles[G]) for G in ab_profiles if G != prof.num_groups]
        fid = []
        try:
            fid_rows(sw, configs, fid_n, fid_steps, fid_seeds, reference, log, out=fid)
        finally:  # a time-boxed run keeps the rows it finished
            if fid:
                result["fid"], result["fid_summary"] = fid, fid_summary(fid)
                save()


# --- plots ----------------------------------------------------------------------------------------

COLOURS = {"lagrangian": "#1f77b4", "exact": "#d62728", "greedy": "#2ca02c", "uniform": "#7f7f7f"}


def plot_ssim_vs_bits(rows, title):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("weights only (A full precision)", "joint W+A"),
                        shared_yaxes=True)
    for col, target in enumerate(("w", "wa"), start=1):
        for m in METHODS:
            sel = sorted([r for r in rows if r["target"] == target and r["method"] == m and "paired_ssim_mean" in r
                          and r["weight_mode"] == "per-group"],
                         key=lambda r: r["avg_bits_used"])
            if not sel:
                continue
            fig.add_trace(go.Scatter(x=[r["avg_bits_used"] for r in sel], y=[r["paired_ssim_mean"] for r in sel],
                                     mode="lines+markers", name=m, legendgroup=m, showlegend=col == 1,
                                     line=dict(color=COLOURS[m]), marker=dict(size=8),
                                     text=[f"budget {r['budget']:g}" for r in sel]), row=1, col=col)
        fig.update_xaxes(title_text="average bits used (per element of the target)", row=1, col=col)
    fig.update_yaxes(title_text="paired SSIM (FP vs quantized, same noise)", row=1, col=1)
    fig.update_layout(template="plotly_white", height=450, title=title)
    return fig


def plot_additivity(rows, summary):
    import plotly.graph_objects as go

    ok = [r for r in rows if "measured_D" in r and "reused_from" not in r]
    fig = go.Figure()
    for m in METHODS:
        for target, sym in (("w", "circle"), ("wa", "diamond")):
            sel = [r for r in ok if r["method"] == m and r["target"] == target]
            if not sel:
                continue
            fig.add_trace(go.Scatter(x=[r["predicted_D"] for r in sel], y=[r["measured_D"] for r in sel],
                                     mode="markers", name=f"{m}, {'W only' if target == 'w' else 'W+A'}",
                                     marker=dict(color=COLOURS[m], symbol=sym, size=10),
                                     text=[f"{target.upper()} {r['budget']:g}" for r in sel]))
    vals = [v for r in ok for v in (r["predicted_D"], r["measured_D"]) if v > 0]
    if vals:
        lo, hi = min(vals) / 2, max(vals) * 2
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="measured = predicted",
                                 line=dict(color="black", dash="dash")))
    a = summary["all"]
    fig.update_xaxes(type="log", title_text="predicted D (sum of per-quantizer D, mean over groups)")
    fig.update_yaxes(type="log", title_text="measured D (all quantizers at once, mean over groups)")
    fig.update_layout(template="plotly_white", height=520,
                      title=f"Additivity: Pearson {a['pearson']:.3f} (log-log {a['pearson_log']:.3f}), "
                            f"measured/predicted mean {a['mean_ratio_measured_over_predicted']:.2f}, "
                            f"median {a['median_ratio_measured_over_predicted']:.2f}")
    return fig


def plot_fid_vs_bits(summary, title):
    import plotly.graph_objects as go

    fig = go.Figure()
    fp = [r for r in summary if r["row"] == "FP"]
    for target, dash in (("W", "dot"), ("WA", "solid")):
        for m in METHODS:
            sel = sorted([r for r in summary if r["row"].startswith(f"{target} ") and f" {m} G=" in r["row"]
                          and r["row"].endswith("G=10")], key=lambda r: r["avg_bits_used"])
            if sel:
                fig.add_trace(go.Scatter(x=[r["avg_bits_used"] for r in sel], y=[r["fid_mean"] for r in sel],
                                         error_y=dict(type="data", array=[r["fid_std"] for r in sel]),
                                         mode="lines+markers", name=f"{m}, {'W only' if target == 'W' else 'W+A'}",
                                         line=dict(color=COLOURS[m], dash=dash), marker=dict(size=9)))
    xs = [r["avg_bits_used"] for r in summary if r["row"] != "FP"]
    if fp and xs:  # a trace, not add_hline: on a log axis the hline's annotation takes log10 units
        fig.add_trace(go.Scatter(x=[min(xs), max(xs)], y=[fp[0]["fid_mean"]] * 2, mode="lines",
                                 name=f"FP {fp[0]['fid_mean']:.2f}", line=dict(color="black", dash="dash")))
    fig.update_xaxes(title_text="average bits used")
    fig.update_yaxes(title_text="FID (MNIST-classifier features)", type="log")
    fig.update_layout(template="plotly_white", height=450, title=title)
    return fig


def plot_ablation(rows, title):
    import plotly.graph_objects as go

    fig = go.Figure()
    for method in ABLATION_METHODS:
        for b, shade in zip(ABLATION_BUDGETS, (1.0, 0.55)):
            sel = [r for r in rows if r["method"] == method and r["budget"] == b]
            if not sel:
                continue
            fig.add_trace(go.Bar(x=[f"G={r['G']}" for r in sel], y=[r["paired_ssim_mean"] for r in sel],
                                 name=f"{method}, W+A {b:g} bits", marker_color=COLOURS[method], opacity=shade,
                                 text=[f"{r['paired_ssim_mean']:.3f}" for r in sel], textposition="outside"))
    fig.update_yaxes(title_text="paired SSIM (FP vs quantized)")
    fig.update_xaxes(title_text="timestep groups (uniform at G=1: one activation range; G>1: per-group ranges)")
    fig.update_layout(template="plotly_white", height=450, barmode="group", title=title)
    return fig


def plot_groups_fid(fid, title):
    """FID of DADQ exact at W+A 4 bits per number of timestep groups, mean over the seeds every G has
    (``fid``: the result's FID rows, one per seed)."""
    import plotly.graph_objects as go

    seeds, by_G = groups_fid(fid)
    Gs = sorted(by_G)
    fig = go.Figure(go.Bar(x=[f"G={G}" for G in Gs], y=[np.mean(by_G[G]) for G in Gs],
                           error_y=dict(type="data", array=[np.std(by_G[G], ddof=1) if len(seeds) > 1 else 0 for G in Gs]),
                           marker_color=COLOURS["exact"], name="DADQ exact, W+A 4 bits",
                           text=[f"{np.mean(by_G[G]):.1f}" for G in Gs], textposition="outside"))
    fp = [r["fid"] for r in fid if r["row"] == "FP" and r["seed"] in seeds]
    if fp:
        fig.add_hline(y=np.mean(fp), line_dash="dash", line_color="black", annotation_text=f"FP {np.mean(fp):.2f}")
    fig.update_yaxes(title_text="FID (MNIST-classifier features)")
    fig.update_xaxes(title_text="timestep groups")
    fig.update_layout(template="plotly_white", height=450, title=f"{title}, mean over seeds {seeds}")
    return fig


def print_main_tables(rows, a, prof, n, steps) -> None:
    print()
    print_table(["target", "budget", "method", "weights", "bits used", "stored W MB", "pred D", "meas D", "meas/pred",
                 "SSIM", "PSNR"],
                [[r["target"].upper(), r["budget"], r["method"], r["weight_mode"], r.get("avg_bits_used"),
                  r.get("stored_weight_MB"), r.get("predicted_D"),
                  r.get("measured_D"),
                  (r["measured_D"] / r["predicted_D"] if r.get("predicted_D") else None) if "measured_D" in r else None,
                  r.get("paired_ssim_mean"), r.get("paired_psnr_mean_finite")] for r in rows],
                title=f"main grid (G={prof.num_groups} profile; paired {n} samples DDIM-{steps})")
    print(f"\nadditivity over {a['cells']} distinct allocations: Pearson {a['pearson']:.3f} (log-log "
          f"{a['pearson_log']:.3f}); measured/predicted mean {a['mean_ratio_measured_over_predicted']:.3f}, "
          f"median {a['median_ratio_measured_over_predicted']:.3f}")


def fid_seed_list(text: str) -> list[int]:
    """'3' -> [1, 2, 3]; '2-3' -> [2, 3]: the FID seeds named by ``--fid-seeds``."""
    try:
        lo, _, hi = text.partition("-")
        seeds = list(range(int(lo), int(hi) + 1)) if hi else list(range(1, int(lo) + 1))
    except ValueError:
        seeds = []
    if not seeds or seeds[0] < 1:
        raise argparse.ArgumentTypeError(f"--fid-seeds {text!r}: give a count N >= 1 (seeds 1..N) or a range A-B "
                                         f"with 1 <= A <= B, e.g. 3 or 2-3.")
    return seeds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, "24 samples at DDIM-25, cheap ablation profiles, one 256-sample FID (<= 10 min)")
    p.add_argument("--model", default="default", help="'default' or 'random' (development: random weights)")
    p.add_argument("--profile", default=None, help="profile file (default: the shipped one)")
    p.add_argument("--n", type=int, default=None, help="paired samples per cell (quick 24, full 128)")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps of the paired samples (25)")
    p.add_argument("--fid-n", type=int, default=None, help="FID samples (quick 256, full 1000); 0 = no FID")
    p.add_argument("--fid-steps", type=int, default=None, help="DDIM steps of the FID samples (quick 25, full 50)")
    p.add_argument("--fid-seeds", type=fid_seed_list, default=None,
                   help="seeds of the FID rows: a count N (seeds 1..N; quick 1, full 3) or a range A-B, e.g. 3-3 "
                        "to run seed 3 alone in a second process that shares the cell cache")
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"],
                   help="the FID reference: the shipped MNIST-test stats, or the Fashion-MNIST test set")
    p.add_argument("--fid-configs", default=None,
                   help="FID rows as target:budget:method,... (e.g. wa:4:exact,wa:4:uniform); 'fp' places the FP row "
                        "(default first; e.g. wa:4:uniform,fp in a second process that shares the cell cache "
                        "while the first computes FP); default: the headline rows")
    p.add_argument("--profiles", default=None,
                   help="more profiles for the FID rows, NAME=PATH,... (e.g. rtn=assets/default/"
                        "profile_rtn.safetensors); a config names one as an option: w:4:exact:rtn")
    p.add_argument("--fid-paired", action="store_true",
                   help="each quantized FID row also scores paired SSIM/PSNR against the FP samples of the same noise")
    p.add_argument("--device", default="cpu", help="where the model samples, e.g. cuda (its FID cells are keyed apart)")
    p.add_argument("--sample-batch", type=int, default=None, help=f"samples per batch (default {SAMPLE_BATCH})")
    p.add_argument("--name", default=None, help="result name (default sweep / sweep_quick; e.g. sweep_fashion)")
    p.add_argument("--ablation-calib", type=int, default=None, help="calib/group of the ablation profiles (quick 4, full 16)")
    p.add_argument("--ablation-mode", default=None, help="mode of the ablation profiles (quick fast, full exact)")
    p.add_argument("--no-ablation", action="store_true")
    p.add_argument("--no-grid", action="store_true", help="skip the main grid (e.g. for an FID-only run)")
    p.add_argument("--wait", type=float, default=0.0, help="seconds to wait for the profile file")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="start no new cell after this many minutes (0: none; rewrite the result and plots from "
                        "finished cells); finished cells stay in the cell cache, and the same command run again "
                        "resumes there (the full run costs hours of CPU)")
    p.add_argument("--cache", default=None,
                   help="finished-cell cache (default for full runs: experiments/results/<name>.cells.json, with the "
                        "ablation profiles in experiments/results/profiles/<name>/; quick runs: none)")
    p.add_argument("--no-cache", action="store_true", help="recompute every cell")
    args = p.parse_args(argv)
    setup_threads(args.threads)
    import dadq

    quick = args.quick
    name = args.name or ("sweep_quick" if quick else "sweep")
    n = args.n or (24 if quick else 128)
    steps = args.steps or 25
    fid_n = (256 if quick else 1000) if args.fid_n is None else args.fid_n
    fid_steps = args.fid_steps or (25 if quick else 50)
    fid_seeds = args.fid_seeds or list(range(1, 1 + (1 if quick else 3)))
    ab_calib = args.ablation_calib or (4 if quick else 16)
    ab_mode = args.ablation_mode or ("fast" if quick else "exact")
    out_json = result_path(name, args.out, EXPERIMENT_RESULTS)
    plot_dir = out_json.parent
    t_start = time.perf_counter()
    load0 = loadavg()
    lines = []

    def log(msg):
        msg = f"[{time.perf_counter() - t_start:6.0f} s] {msg}"
        lines.append(msg)
        print(msg, flush=True)

    device = args.device
    if torch.device(device).type == "cuda" and args.max_minutes == 0 and not torch.cuda.is_available():
        # --max-minutes 0 samples nothing: a result is assembled from the GPU's cells on a machine without one
        log(f"--device {device} --max-minutes 0 without CUDA here: the model stays on the CPU; cells are read under "
            f"the {device} key, and nothing is sampled")
        device = "cpu"
    model = load_model(args.model, device=device)
    prof = get_profile(model, args.model, args.profile, args.wait)
    cache_path = None if args.no_cache else (args.cache or (None if quick else out_json.with_suffix(".cells.json")))
    profile_dir = None if cache_path is None else out_json.parent / "profiles" / name
    sw = Sweep(args, model, prof, CellCache(cache_path), Deadline(args.max_minutes), profile_dir)
    sw.profiles = parse_profiles(args.profiles, model)
    if cache_path is not None:
        log(f"cell cache {cache_path}: {len(sw.cache.cells)} finished cells")
    result = {
        "benchmark": name, "command": command_line("sweep", "experiments"),
        "quick": quick, "complete": False,
        "machine": machine_facts(), "loadavg_start": load0,
        "setup": {"model": args.model, "fingerprint": prof.fingerprint,
                  "profile": (shown_path(profile_path(args.model, args.profile)) if args.model != "random" or args.profile
                              else "built here (random weights, development)"), "profile_groups": prof.num_groups,
                  "profile_bits": prof.bits.tolist(), "profile_calib_per_group": prof.meta.get("calib_per_group"),
                  "profile_mode": prof.meta.get("mode"), "weight_mode": "per-group",
                  "profile_facts": profile_facts(prof), "more_profiles": {
                      k: profile_facts(v, path) for (k, v), path in zip(sw.profiles.items(), [
                          x.partition("=")[2] for x in (args.profiles or "").split(",") if x.strip()])},
                  "paired": {"n": n, "sampler": f"DDIM-{steps}", "eta": 0.0, "seed": 0,
                             "metric": "dadq.metrics.paired_psnr_ssim (SSIM Gaussian 11x11, sigma 1.5, data_range 2)"},
                  "predicted_D": "mean over groups of the summed per-quantizer D (additivity assumption)",
                  "measured_D": "dadq.measure_distortion on the profile's calibration x_t, mean over groups",
                  "grid": [f"{t.upper()} {b:g}" for t, b in GRID],
                  "methods": list(QUICK_METHODS if quick else METHODS)},
    }

    # every slice of a resumable run, oldest first: the result's log holds only the latest one
    slices = previous_slices(out_json, sw.cache, name) if cache_path is not None else []
    # milliseconds: two short runs of one process in the same second are still two slices, in order
    utc0 = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    slice_id = f"{utc0} pid {os.getpid()}"

    def save():
        result["cells_from_cache"] = sw.cache.hits
        result["seconds_total"] = time.perf_counter() - t_start
        this = {"command": result["command"], "utc_start": utc0, "seconds": round(result["seconds_total"], 1),
                "cells_computed": sw.cache.added, "stopped_before": result.get("stopped_before")}
        if cache_path is not None and sw.cache.added:
            sw.cache.record_slice(slice_id, {**this, "name": name})
        result["slices"] = slices + [this]
        result["loadavg_now"] = loadavg()
        result["log"] = lines
        write_result(name, result, args.out, EXPERIMENT_RESULTS)

    for k, v in sw.profiles.items():  # the rows of a GPTQ / bias-corrected profile sample the weights it profiled
        if v.settings()["rounding"] != "rtn" or v.settings()["bias_correction"]:
            chk = result.setdefault("profiled_weights_check", {})[k] = profiled_weights_check(dadq, model, v)
            log(f"profile {k}: quantize rebuilds the profiled weights: D {chk['measured_D']:.6g} measured vs "
                f"{chk['profiled_D']:.6g} profiled ({chk['layer']} W{chk['bits']}, group {chk['group']}): "
                f"{'PASS' if chk['pass'] else 'FAIL'}")
    stopped = None
    try:
        plan = Plan(args, quick, n, steps, fid_n, fid_steps, fid_seeds, ab_calib, ab_mode)
        run_parts(sw, plan, result, save, log)
    except OutOfTime as stop:
        # a time-boxed slice still plots and tabulates what is finished, marked partial
        stopped = result["stopped_before"] = str(stop)
        log(f"--max-minutes {args.max_minutes:g} passed; stopped before {stop}. {len(sw.cache.cells)} finished cells "
            f"are in {cache_path}; run the same command again to go on.")
        save()
    rows, ab = result.get("cells", []), result.get("groups_ablation")
    partial = "" if stopped is None else " [partial run]"

    # 4. plots
    plots = {}
    figs = {}
    if rows:
        figs["ssim_vs_bits"] = plot_ssim_vs_bits(rows, f"Paired SSIM vs average bits ({n} samples, DDIM-{steps}, "
                                                       f"G={prof.num_groups} profile){partial}")
        figs["additivity"] = plot_additivity(rows, result["additivity"])
    if ab is not None:
        figs["groups_ablation"] = plot_ablation(ab["rows"], f"Timestep groups ablation: paired SSIM ({ab_mode} profiles, "
                                                            f"calib {ab_calib}/group; {n} samples, DDIM-{steps}){partial}")
    if "fid_summary" in result:
        done = sorted({s for r in result["fid_summary"] for s in r["seeds"]})
        if any(r["row"] != "FP" and r["row"].endswith("G=10") for r in result["fid_summary"]):
            # rows with options (a profile name, a scope, ...) are not on its curves: no empty plot
            figs["fid_vs_bits"] = plot_fid_vs_bits(result["fid_summary"], f"FID vs average bits ({fid_n} samples, "
                                                                          f"DDIM-{fid_steps}, seeds {done}){partial}")
        g_seeds, g_fid = groups_fid(result["fid"])
        if g_seeds and len(g_fid) > 1:
            figs["groups_fid"] = plot_groups_fid(result["fid"], f"Timestep groups ablation: FID at W+A 4 bits "
                                                                        f"({fid_n} samples, DDIM-{fid_steps}){partial}")
    if not args.no_grid:  # the heatmap belongs to the profile: an FID-only run on it would only copy it
        from dadq.plots import allocation_heatmap

        a4 = dadq.allocate(prof, budget=4.0, target="wa", method="exact")
        figs["heatmap_wa4_exact"] = allocation_heatmap(prof, a4)
        result["heatmap_wa4_exact"] = {"w_bits": a4.w_bits.tolist(), "a_bits": a4.a_bits.tolist(),
                                       "layer_names": a4.layer_names,
                                       "mean_w_bits_per_layer": a4.w_bits.mean(0).round(2).tolist(),
                                       "mean_a_bits_per_layer": a4.a_bits.mean(0).round(2).tolist()}
    for k, fig in figs.items():
        w = 1100 if k == "heatmap_wa4_exact" else 1000
        res = save_figure(fig, plot_dir / f"{name}_{k}", width=w)
        plots[k] = jsonable(res)
        log(f"plot {k}: {plots[k]['png'] or plots[k]['html']}" + (f" (PNG failed: {res['png_error']})"
                                                                   if res["png_error"] else ""))
    result["plots"] = plots

    # --- tables
    if rows:
        print_main_tables(rows, result["additivity"]["all"], prof, n, steps)
    if ab is not None:
        print()
        print_table(["G", "budget", "method", "bits used", "pred D", "SSIM", "PSNR"],
                    [[r["G"], r["budget"], r["method"], r["avg_bits_used"], r["predicted_D"], r["paired_ssim_mean"],
                      r["paired_psnr_mean_finite"]] for r in ab["rows"]],
                    title=f"groups ablation (W+A; {ab_mode} profiles, calib {ab_calib}/group)")
    if "fid" in result:
        print()
        print_table(["row", "FID mean", "std", "FP FID", "x FP", "n", "sampler", "seeds"],
                    [[r["row"], r["fid_mean"], r["fid_std"], r["fp_fid_mean"], r["fid_over_fp"], r["n"], r["sampler"],
                      len(r["seeds"])] for r in result["fid_summary"]], title=result["fid"][0]["label"])
    total = time.perf_counter() - t_start
    result["complete"] = stopped is None
    if quick and stopped is None:
        result["targets"] = {"quick_run_seconds": {"value": total, "target": f"<= {QUICK_LIMIT_S:.0f}",
                                                   "pass": total <= QUICK_LIMIT_S}}
        print(f"\nquick sweep took {total:.0f} s (target <= {QUICK_LIMIT_S:.0f} s): "
              f"{'PASS' if total <= QUICK_LIMIT_S else 'FAIL'}")
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
