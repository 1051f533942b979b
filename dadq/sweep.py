"""Quality against size in one call: sample FP once, then every (method, budget) quantized model from
the same noise and seed, and score each against FP (paired SSIM/PSNR; FID on request)."""
from __future__ import annotations

import math

import numpy as np

QUALITY_COLUMNS = ["method", "budget", "avg_bits", "ssim", "psnr", "fid"]


def quality_vs_bits(model, profile, budgets, methods=("lagrangian", "uniform"), n: int = 16, steps: int = 20,
                    seed: int = 0, sampler: str = "ddim", fid: bool = False, feature: str = "mnist", target: str = "wa",
                    budget_scope: str = "group", progress=None, cancel=None):
    """A pandas DataFrame, one row per (method, budget): the allocation's average bits, the mean paired
    SSIM and PSNR (dB) of its n samples against the FP samples of the same noise and seed, and their
    FID (only with ``fid=True``, against the test split of the data the model names; NaN otherwise). A
    budget a method cannot meet gives a row of NaN.

    progress: callable(fraction, text) or None.  cancel: a threading.Event (or anything with
    ``is_set``); when set, the sweep stops with ``InterruptedError`` between two chains."""
    import pandas as pd

    from . import metrics
    from .allocate import METHODS, allocate
    from .quant import quantize
    from .sampling import sample

    budgets = [float(b) for b in budgets]
    if not budgets or not all(math.isfinite(b) and b > 0 for b in budgets):
        raise ValueError(f"budgets {budgets}: give one or more positive average bit widths, e.g. 3,4,6.")
    for m in methods:
        if m not in METHODS:
            raise ValueError(f"method {m!r}: choose from {METHODS}.")
    if n < 1:
        raise ValueError(f"n={n}: ask for at least one sample.")
    if fid:
        metrics.check_fid_request(model.sample_shape, n, feature)
        reference = metrics.dataset_reference(model.info.get("dataset", "mnist"), feature)  # a folder's dadq.json
    total = 1 + len(methods) * len(budgets)
    done = [0]

    def chain(text):
        if cancel is not None and cancel.is_set():
            raise InterruptedError("the quality sweep was cancelled.")
        base = done[0] / total

        def report(f, t):
            if progress:
                progress(base + f / total, f"{text} · {t}")
        return report

    kw = dict(n=n, steps=steps, seed=seed, sampler=sampler)
    fp = sample(model, progress=chain("FP") if progress else False, **kw)
    done[0] += 1
    rows = []
    for m in methods:
        for b in budgets:
            try:
                alloc = allocate(profile, budget=b, method=m, target=target, budget_scope=budget_scope)
            except ValueError:
                rows.append([m, b, np.nan, np.nan, np.nan, np.nan])
                done[0] += 1
                continue
            rep = chain(f"{m} at {b:g} bits")
            q = sample(quantize(model, profile, alloc), progress=rep if progress else False, **kw)
            psnr, ssim = metrics.paired_psnr_ssim(fp, q)
            finite = psnr[np.isfinite(psnr)]
            score = metrics.fid(q, reference=reference, feature=feature) if fid else np.nan
            rows.append([m, b, float(np.mean(alloc.group_avg_bits)), float(ssim.mean()),
                         float(finite.mean()) if finite.size else float("inf"), float(score)])
            done[0] += 1
    if progress:
        progress(1.0, "done")
    return pd.DataFrame(rows, columns=QUALITY_COLUMNS)
