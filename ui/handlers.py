"""One function per event. Each validates what only the UI knows (its controls, its uploads), calls
dadq, and returns what the views show. Bad input raises ``gr.Error`` naming the problem and the fix,
writes one line to the server log (no traceback), and leaves the state as it was."""
from __future__ import annotations

import functools
import logging
import math
import shutil
import threading
import time
from pathlib import Path

import gradio as gr

import dadq
from dadq import plots
from dadq.allocate import METHODS
from dadq.bitwidths import parse_bits
from dadq.models import default_profile_path
from dadq.rounding import ROUNDINGS
from dadq.trajectory import GAIN_SETTINGS
from dadq.profile import most_group_dependent_layer, most_sensitive_layer, sensitivity_ranking

from . import views
from .state import STATE, Cancelled, alloc_label, gain_origin

log = logging.getLogger("dadq.app")
GAIN_POWER_MAX = 1.0  # the group weight power's top: 1 weighs each group's D by the trajectory gain itself
MAX_UPLOAD_BYTES = 64 * 1024 * 1024  # also gradio's limit (launch(max_file_size=...)); checked again here
ALLOC_CONTROLS = ("drive", "budget", "log_lam", "w_budget", "a_budget", "target", "method", "weight_mode",
                  "budget_scope", "full_precision", "gain_power")


def safe(fn):
    """Bad input -> gr.Error with the problem and the fix, one log line; never a traceback in the UI."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error as e:
            log.warning("dadq app: %s rejected: %s", fn.__name__, e.message)
            raise
        except Cancelled:
            raise gr.Error("Profiling was cancelled; the previous profile is still loaded.",
                           print_exception=False) from None
        except (ValueError, FileNotFoundError, KeyError) as e:
            msg = str(e).strip("'\"")
            log.warning("dadq app: %s rejected: %s", fn.__name__, msg)
            raise gr.Error(msg, print_exception=False) from None
        except Exception as e:  # an unexpected failure: still one readable line, state unchanged
            log.exception("dadq app: %s failed", fn.__name__)
            raise gr.Error(f"{type(e).__name__}: {e}. The app kept its last good state.",
                           print_exception=False) from None

    return wrapper


def _need_profile():
    if STATE.profile is None or STATE.model is None:
        raise ValueError("no model and profile are loaded; load one in the Model tab.")


def _upload(file) -> Path:
    if file is None:
        raise ValueError("no file was uploaded; choose a file first.")
    path = Path(file)
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise ValueError(f"{path.name} is {size / 1e6:.1f} MB; uploads are limited to {MAX_UPLOAD_BYTES / 1e6:.0f} MB.")
    return path


def _named(e: Exception, path: Path, fix: str) -> ValueError:
    """An upload's error naming the file the user chose (not gradio's temp path) and the fix."""
    msg = str(e).strip("'\"").replace(str(path), path.name).replace(str(path.parent) + "/", "")
    if path.name not in msg:
        msg = f"{path.name}: {msg}"
    return ValueError(f"{msg} {fix}")


def throttled(progress, scale: float = 1.0, offset: float = 0.0, prefix: str = "", every_s: float = 0.25):
    """progress(frac, text) at most every ``every_s`` s: an update per denoising step floods the stream."""
    last = [0.0]

    def report(frac, text):
        now = time.perf_counter()
        if now - last[0] >= every_s or frac >= 1.0:
            last[0] = now
            progress(offset + scale * frac, desc=f"{prefix}{text}")

    return report


# --- views 1 and 2 ----------------------------------------------------------------------------------

@safe
def sensitivity(group, x="bits", view="layers", layer=None, rank_bits=None, top_k=0):
    """RD curves (all layers in one group, only its ``top_k`` most sensitive when > 0, or one layer
    across groups) and the ranking of one group."""
    _need_profile()
    p = STATE.profile
    group = views.MEAN_GROUP if group is None else int(group)
    if view == "groups":
        fig = plots.rd_curves_groups(p, layer or most_sensitive_layer(p), x=x)
    else:
        top_k = int(top_k or 0)
        order = sensitivity_ranking(p, group, None if rank_bits is None else int(rank_bits))[1]
        keep = None if top_k <= 0 else [p.layer_names[i] for i in sorted(order[:top_k])]
        fig = plots.rd_curves(p, group=group, x=x, layers=keep)
    ranked = "mean over groups" if group < 0 else plots.group_labels(p)[group]
    df = views.table(plots.sensitivity_table(p, group, None if rank_bits is None else int(rank_bits)))
    return fig, df.rename(columns={"rank": f"rank in {ranked}"})  # the table says which group it ranks


@safe
def activations(layer=None, style="overlay", bits=None, log_y=True):
    """A layer's input distribution per timestep group, and each group's range table."""
    _need_profile()
    p = STATE.profile
    layer = layer or most_group_dependent_layer(p)
    bits = None if bits in (None, "") else int(bits)
    return (plots.activation_hist(p, layer, style=style, bits=bits, log_y=bool(log_y)),
            views.table(plots.activation_table(p, layer, bits)))


# --- views 3 and 4: allocation -----------------------------------------------------------------------

def _group_weights(gain_power) -> dict:
    """allocate's group_weights from the power P of the trajectory gain: {} at P = 0 (the profile's D)."""
    power = float(gain_power or 0.0)
    if not 0.0 <= power <= GAIN_POWER_MAX:
        raise ValueError(f"group weight power {power:g}: choose a power of the trajectory gain from 0 (off) to "
                         f"{GAIN_POWER_MAX:g} (1: the gain itself).")
    if power == 0.0:
        return {}
    if STATE.gain is None:
        raise ValueError(f"weighting the groups by the trajectory gain needs the gain of this model over the "
                         f"profile's {STATE.profile.num_groups} groups ({STATE.gain_source}): press "
                         "'measure trajectory gain', or set the power to 0.")
    return dict(group_weights=STATE.gain ** power)


def _solve(drive, budget, log_lam, w_budget, a_budget, target, method, weight_mode, budget_scope="group",
           full_precision=(), gain_power=0.0):
    """(Allocation, requested budget) from the allocation controls. full_precision: any of
    views.FULL_PRECISION's values ('input': allocate's fp_input, 'top': its fp_top); gain_power: each
    group's D weighted by the trajectory gain to this power (0: not weighted)."""
    _need_profile()
    p = STATE.profile
    if target not in ("wa", "separate", "w", "a"):
        raise ValueError(f"target={target!r}: choose one of wa, separate, w, a.")
    common = dict(weight_mode=weight_mode, budget_scope=budget_scope, **views.full_precision_kwargs(full_precision),
                  **_group_weights(gain_power))
    if drive == "lambda":
        return dadq.allocate(p, lam=10.0 ** float(log_lam), target="wa" if target == "separate" else target,
                             **common), None
    if drive != "budget":
        raise ValueError(f"drive={drive!r}: choose 'budget' or 'lambda'.")
    top = float(p.bits.max())
    asked = [float(w_budget), float(a_budget)] if target == "separate" else [float(budget)]
    for b in asked:  # the sliders end at the widest width: above it nothing more can be spent
        if not math.isfinite(b) or b > top:
            raise ValueError(f"budget {b:g} average bits is above the widest profiled width ({top:g} bits), "
                             f"where every quantizer already sits: choose a budget of at most {top:g}.")
    if target == "separate":
        return dadq.allocate(p, w_budget=asked[0], a_budget=asked[1], target="wa", method=method, **common), None
    return dadq.allocate(p, budget=asked[0], target=target, method=method, **common), asked[0]


def _allocate(*controls):
    request = dict(zip(ALLOC_CONTROLS, controls))
    alloc, requested = _solve(**request)
    STATE.show(alloc, requested, request)


@safe
def allocate(drive="budget", budget=4.0, log_lam=0.0, w_budget=4.0, a_budget=4.0, target="wa",
             method="lagrangian", weight_mode="per-group", budget_scope="group", full_precision=(), gain_power=0.0):
    """Solve the allocation; returns (heatmap, trade-off curve, summary)."""
    _allocate(drive, budget, log_lam, w_budget, a_budget, target, method, weight_mode, budget_scope, full_precision,
              gain_power)
    return views.allocation_views()


@safe
def allocate_first(drive="budget", budget=4.0, log_lam=0.0, w_budget=4.0, a_budget=4.0, target="wa",
                   method="lagrangian", weight_mode="per-group", budget_scope="group", full_precision=(),
                   gain_power=0.0):
    """The browser's path of ``allocate``: (heatmap spec, summary) now, the trade-off figure in a
    chained event (``tradeoff``), so the heatmap is redrawn without waiting for the second plot. The
    specs go to hidden gr.JSON components and are drawn in place (``ui.texts.redraw_js``)."""
    _allocate(drive, budget, log_lam, w_budget, a_budget, target, method, weight_mode, budget_scope, full_precision,
              gain_power)
    return views.heatmap_view().to_dict(), views.summary_view()


@safe
def heatmap(order="network", find="", collapsed=None, only_found=False):
    """The heatmap with rows in network order or most sensitive first, rows matching ``find`` marked
    (or, with ``only_found``, the only rows), and the ``collapsed`` blocks one row each."""
    _need_profile()
    plots.heatmap_rows(STATE.profile, order)  # an unknown order is an error before the state changes
    blocks = plots.layer_blocks(STATE.profile.layer_names)
    collapsed = list(collapsed or [])
    unknown = [b for b in collapsed if b not in blocks]
    if unknown:
        raise ValueError(f"no block named {unknown[0]!r} in this model; its blocks are {', '.join(blocks)}.")
    STATE.heat_order, STATE.heat_find = order, (find or "").strip()
    STATE.heat_collapsed, STATE.heat_only = collapsed, bool(only_found)
    n = len(plots.find_layers(STATE.profile.layer_names, STATE.heat_find))
    note = f"{n} layer(s) match '{STATE.heat_find}'" if STATE.heat_find else ""
    if STATE.heat_find and not n:
        note = f"no layer name contains '{STATE.heat_find}'"
    if STATE.heat_only and not STATE.heat_find:
        note = "'only matching rows' needs a search: type part of a layer name"
    return views.heatmap_view(), note


@safe
def collapse_blocks(collapse=True, order="network", find="", only_found=False):
    """Collapse every block of the heatmap to one row (``collapse``), or expand them all: the block
    control's new value, the heatmap and its note."""
    _need_profile()
    blocks = plots.layer_blocks(STATE.profile.layer_names) if collapse else []
    return (blocks, *heatmap(order, find, blocks, only_found))


def tradeoff():
    """The trade-off figure spec of the displayed allocation (its frontiers and the star)."""
    return views.tradeoff_view().to_dict()


def reset_controls():
    """After a rejected input: the allocation controls go back to the displayed allocation."""
    if STATE.alloc is None:
        return [gr.skip()] * len(ALLOC_CONTROLS)
    values = views.control_values()
    return [values[k] if k in values else gr.skip() for k in ALLOC_CONTROLS]


@safe
def distortion_breakdown():
    """The quantizers that make up most of the displayed allocation's predicted D, per group too."""
    _need_profile()
    return views.breakdown()


@safe
def pin_allocation():
    """Pin the displayed allocation as A, for an A/B comparison with whatever is displayed later."""
    _need_profile()
    STATE.pinned = STATE.alloc
    return f"**A** pinned: {alloc_label(STATE.alloc)}. Change the settings, then press *compare B with A*."


@safe
def compare_pinned():
    """B (displayed) against A (pinned): the B − A bits heatmap, and both predicted D and sizes."""
    _need_profile()
    a, b = STATE.pinned, STATE.alloc
    if a is None:
        raise ValueError("no allocation is pinned: press 'pin as A' first.")
    rows = []
    for name, x in (("A", a), ("B", b)):
        rows.append(f"| {name} | {alloc_label(x)} | {float(x.predicted.mean()):.4g} | {x.stored_weight_bits / 8e6:.4g} |")
    ratio = float(b.predicted.mean()) / max(float(a.predicted.mean()), 1e-300)
    md = "\n".join(["| | allocation | predicted D (mean over groups) | weights stored (MB) |", "|---|---|---|---|", *rows,
                    "", f"B / A predicted D: **{ratio:.3g}×**."])
    return plots.allocation_diff_heatmap(STATE.profile, a, b), md


@safe
def compare_solvers(drive="budget", budget=4.0, log_lam=0.0, w_budget=4.0, a_budget=4.0, target="wa",
                    method="lagrangian", weight_mode="per-group", budget_scope="group", full_precision=(),
                    gain_power=0.0):
    """All four solvers at the current budget (for λ: the size the λ point uses)."""
    _need_profile()
    if drive == "lambda":
        alloc, _ = _solve(drive, budget, log_lam, w_budget, a_budget, target, method, weight_mode, budget_scope,
                          full_precision, gain_power)
        drive, budget = "budget", float(alloc.group_avg_bits.mean())
        target = "wa" if target == "separate" else target
    results = []
    for m in METHODS:
        t0 = time.perf_counter()
        try:
            a, _ = _solve(drive, budget, log_lam, w_budget, a_budget, target, m, weight_mode, budget_scope,
                          full_precision, gain_power)
        except ValueError as e:
            a = str(e)
        results.append((m, a, time.perf_counter() - t0))
    return views.table(plots.solver_table(results))


@safe
def additivity():
    """The measured distortion of the displayed allocation beside the predicted sum, per group."""
    _need_profile()
    res = dict(dadq.additivity(STATE.model, STATE.profile, STATE.alloc))
    res["log_correlation"] = dadq.metrics.correlation(res["predicted"], res["measured"], log=True)
    ratio = res["ratio"]
    md = (f"Measured on the profile's calibration inputs. Correlation predicted↔measured over groups: "
          f"**{res['correlation']:.3f}**, on log10 values **{res['log_correlation']:.3f}** (a log axis: one "
          f"group's D can be 100× another's); measured / predicted: mean **{ratio.mean():.2f}**, range "
          f"{ratio.min():.2f}–{ratio.max():.2f}. Ratios near 1 mean the per-quantizer curves add up.")
    return plots.additivity_plot(res, plots.group_labels(STATE.profile)), md


# --- view 5: samples and FID ------------------------------------------------------------------------------

def _sampler_steps(sampler, steps):
    if sampler not in ("ddim", "ddpm"):
        raise ValueError(f"sampler={sampler!r}: choose 'ddim' or 'ddpm'.")
    return 0 if sampler == "ddpm" else int(steps)


def _conditioning(labels, guidance, n: int):
    """(class labels int64 [n] or None, guidance scale or None) from the Samples tab's controls. The
    labels text is comma separated and repeated to ``n``; empty: the model's default 0, 1, …, K−1, 0, ….
    An unconditional model takes neither (its controls are inactive; API callers get an error)."""
    import torch

    m = STATE.model
    text = str(labels or "").replace(" ", "")
    if m.conditioning != "class":
        if text:
            raise ValueError(f"class labels {labels!r} given, but the loaded model is not class-conditional: "
                             "leave the labels empty.")
        return None, None
    if text:
        try:
            given = [int(v) for v in text.split(",") if v]
        except ValueError:
            raise ValueError(f"class labels {labels!r}: give whole numbers separated by commas, e.g. 3 or 0,1,2.") \
                from None
        y = torch.tensor(given, dtype=torch.long).repeat((n + len(given) - 1) // len(given))[:n]
    else:
        y = m.default_labels(n)
    y = m.check_labels(y, n)  # out of range: the error names the model's classes
    g = m.guidance_scale if guidance is None else float(guidance)
    return y, m.check_guidance(g)


def sampler_controls(sampler):
    """DDPM runs all T steps: the DDIM steps slider is inactive then."""
    return gr.update(interactive=sampler == "ddim")


@safe
def generate(seed=0, n=16, sampler="ddim", steps=50, labels="", guidance=None, progress=gr.Progress()):
    """FP and quantized samples from identical noise (and the same class labels and guidance), pair
    by pair with |FP − Q|, PSNR/SSIM, PNG grids."""
    _need_profile()
    n, seed = int(n), int(seed)
    if not 1 <= n <= 256:
        raise ValueError(f"count {n}: ask for 1 to 256 samples.")
    steps = _sampler_steps(sampler, steps)
    y, scale = _conditioning(labels, guidance, n)
    snap = STATE.snapshot(progress)  # the allocation this job runs and names, whatever happens meanwhile
    timings = {}
    fp, q = dadq.sample_pair(STATE.model, snap.qmodel, n=n, steps=steps, seed=seed, sampler=sampler,
                             progress=throttled(progress, prefix=f"{n}+{n} samples · "), timings=timings,
                             class_labels=y, guidance_scale=1.0 if y is not None and scale is None else scale)
    STATE.samples = dict(fp=fp, q=q, seed=seed, n=n, sampler=sampler, steps=steps, label=snap.label)
    psnr, ssim = dadq.paired_psnr_ssim(fp, q)
    stamp = f"{int(time.time() * 1000)}"
    grids = [str(dadq.images.save_grid(fp, STATE.workdir / f"fp_grid_{stamp}.png")),
             str(dadq.images.save_grid(q, STATE.workdir / f"quantized_grid_{stamp}.png"))]
    t_fp, t_q = timings["fp_s"], timings["quantized_s"]
    how = "side by side, each on half the CPU threads" if timings["parallel"] else "one after the other"
    finite = psnr[psnr != float("inf")]
    md = (f"{n} + {n} samples, {views.sampler_name(sampler, steps)}, seed {seed}, identical noise. "
          f"Allocation: **{snap.label}**. Each item: FP | quantized | |FP − Q| (white = the largest difference "
          f"in this batch). Time: FP {t_fp:.2f} s, quantized {t_q:.2f} s (×{t_q / max(t_fp, 1e-9):.2f}; {how}). "
          f"Mean PSNR {finite.mean() if finite.size else float('inf'):.2f} dB, mean SSIM {ssim.mean():.4f}."
          + views.conditioning_text(y, scale))
    return views.pair_items(fp, q, psnr, ssim), views.pair_table(psnr, ssim), grids, md


@safe
def generate_ab(seed=0, n=16, sampler="ddim", steps=50, labels="", guidance=None, progress=gr.Progress()):
    """Samples of the pinned A and the displayed B from the same noise and seed as FP, with each
    pair's PSNR/SSIM of A and of B against FP. Both allocations are taken at the start."""
    _need_profile()
    n, seed = int(n), int(seed)
    if not 1 <= n <= 256:
        raise ValueError(f"count {n}: ask for 1 to 256 samples.")
    steps = _sampler_steps(sampler, steps)
    pinned = STATE.pinned
    if pinned is None:
        raise ValueError("no allocation is pinned: pin one as A in the Allocation tab first.")
    y, scale = _conditioning(labels, guidance, n)
    b = STATE.snapshot(progress)  # B: the displayed allocation at the start, whatever happens meanwhile
    qa = dadq.quantize(STATE.model, STATE.profile, pinned)
    kw = dict(n=n, steps=steps, seed=seed, sampler=sampler, class_labels=y,
              guidance_scale=1.0 if y is not None and scale is None else scale)
    out = []
    for i, (name, m) in enumerate((("FP", STATE.model), ("A", qa), ("B", b.qmodel))):
        report = throttled(progress, scale=1 / 3, offset=i / 3, prefix=f"{name} · ")
        out.append(dadq.sample(m, progress=report, **kw))
    fp, xa, xb = out
    metrics = [dadq.paired_psnr_ssim(fp, xa), dadq.paired_psnr_ssim(fp, xb)]
    md = (f"{n} samples each of FP, A and B, {views.sampler_name(sampler, steps)}, seed {seed}, identical noise. "
          f"**A**: {alloc_label(pinned)}, mean SSIM {metrics[0][1].mean():.4f}. **B**: {b.label}, mean SSIM "
          f"{metrics[1][1].mean():.4f}. Each item: FP | A | B." + views.conditioning_text(y, scale))
    return views.ab_items(fp, xa, xb, metrics), views.ab_table(metrics), md


@safe
def quality_sweep(budgets="2.5,3,4,6", n=8, seed=0, sampler="ddim", steps=20, with_fid=False, feature="mnist",
                  progress=gr.Progress()):
    """Paired SSIM (FID on request) of DADQ (lagrangian) and uniform at several budgets
    (dadq.sweep.quality_vs_bits), cached per model fingerprint and settings."""
    from dadq.sweep import quality_vs_bits

    _need_profile()
    try:
        bl = tuple(float(b) for b in str(budgets).replace(" ", "").split(",") if b)
    except ValueError:
        raise ValueError(f"budgets {budgets!r}: give average bit widths separated by commas, e.g. 3,4,6.") from None
    steps = _sampler_steps(sampler, steps)
    model, prof = STATE.model, STATE.profile
    key = (model.fingerprint(), prof.fingerprint, id(prof), bl, int(n), int(seed), sampler, steps, bool(with_fid),
           feature)
    cached = key in STATE.quality
    if not cached:
        # a token of this run: a cancelled run's thread may outlive its event, and must stay cancelled
        STATE.sweep_cancel = token = threading.Event()
        try:
            result = quality_vs_bits(model, prof, bl, methods=("lagrangian", "uniform"), n=int(n), steps=steps,
                                     seed=int(seed), sampler=sampler, fid=bool(with_fid), feature=feature,
                                     progress=throttled(progress), cancel=token)
        except InterruptedError:
            raise ValueError("the quality sweep was cancelled; nothing was cached.") from None
        STATE.quality[key] = result
    frame = STATE.quality[key]
    md = (f"DADQ (lagrangian) and uniform at budgets {', '.join(f'{b:g}' for b in bl)}; {int(n)} samples each, "
          f"{views.sampler_name(sampler, steps)}, seed {int(seed)}, the same noise as FP. "
          + ("From the cache (same model and settings)." if cached else "Computed now; cached for these settings."))
    shown = (frame if with_fid else frame.drop(columns="fid")).round(4)
    return plots.quality_sweep_plot(frame), shown.astype(object).where(shown.notna(), None), md


@safe
def fid(n=256, seed=0, sampler="ddim", steps=50, feature="mnist", progress=gr.Progress()):
    """FID of FP and quantized samples (same sampler, steps, seeds), appended to the run history."""
    _need_profile()
    n, seed = int(n), int(seed)
    dadq.metrics.check_fid_request(STATE.model.sample_shape, n, feature)  # before any sampling
    steps = _sampler_steps(sampler, steps)
    name = views.sampler_name(sampler, steps)
    snap = STATE.snapshot(progress)  # the allocation this job runs and names, whatever happens meanwhile
    progress(0.0, desc=f"FID 1/3 · sampling {n} FP + {n} quantized ({name})")
    fp, q = dadq.sample_pair(STATE.model, snap.qmodel, n=n, steps=steps, seed=seed, sampler=sampler,
                             progress=throttled(progress, scale=0.9, prefix=f"FID 1/3 · {n}+{n} samples · "))
    dataset = STATE.model.info.get("dataset", "mnist")  # a model folder's dadq.json names its data
    reference = dadq.metrics.dataset_reference(dataset, feature)
    progress(0.9, desc=f"FID 2/3 · features of {n} FP images")
    f_fp = dadq.metrics.fid(fp, reference=reference, feature=feature)
    progress(0.95, desc=f"FID 3/3 · features of {n} quantized images")
    f_q = dadq.metrics.fid(q, reference=reference, feature=feature)
    net = dadq.metrics.FID_SETTINGS[feature]["feature_net"]
    rounding = (STATE.profile.meta or {}).get("rounding", "rtn")
    run = 1 + max([r[0] for r in STATE.fid_rows], default=0)
    for model, label, score in (("FP", "—", f_fp), ("quantized", snap.label, f_q)):
        STATE.fid_rows.append([run, f"{model} · {STATE.model_src}", label, rounding if model != "FP" else "—",
                               name, n, seed, net, f"{dataset} test", round(score, 3)])
    return views.fid_table()


# --- view 6: model, profile, files ------------------------------------------------------------------

@safe
def load_model(src="default", profile_path="", progress=gr.Progress()):
    """Load a model (and its profile when one is found). Returns (status text, changed?)."""
    src = (src or "").strip()
    if not src:
        raise ValueError("no model given: enter 'default', a local diffusers folder, or a hub id.")
    progress(0.1, desc=f"loading {src}")
    model = dadq.load_model(src)
    explicit = (profile_path or "").strip()
    path = Path(explicit).expanduser() if explicit else default_profile_path(src)
    if path is None:
        STATE.pending = (model, src)
        return (f"Loaded `{src}` (fingerprint `{model.fingerprint()}`), but it has no profile yet. Run a profile "
                "below, or upload one. The views keep showing the previous model until then."), False
    progress(0.6, desc=f"loading profile {path}")
    profile = dadq.Profile.load(path)
    STATE.install(model, src, profile, path)
    return f"Loaded `{src}` with profile `{path}`.", True


@safe
def run_profile(groups=10, bits="2-8", calib=8, mode="fast", layers="", rounding="rtn", bias_correction=False,
                weight_grid="symmetric", progress=gr.Progress()):
    """Profile the loaded (or pending) model with the chosen weight rounding (``dadq.rounding.ROUNDINGS``),
    bias correction and weight grid (``dadq.quant.WEIGHT_GRIDS``), all recorded in the profile's header;
    Cancel leaves the previous profile."""
    if STATE.model is None and STATE.pending is None:
        raise ValueError("no model is loaded; load one first.")
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding={rounding!r}: choose one of {', '.join(ROUNDINGS)}.")
    model, src = STATE.pending if STATE.pending is not None else (STATE.model, STATE.model_src)
    STATE.cancel.clear()
    layer_sel = [s.strip() for s in str(layers or "").split(",") if s.strip()] or None
    report = throttled(progress)

    def prog(frac, text):
        if STATE.cancel.is_set():
            raise Cancelled()
        report(frac, text)

    progress(0.0, desc="calibration trajectories (FP sampling)")
    prof = dadq.profile(model, groups=int(groups), bits=parse_bits(bits), calib_per_group=int(calib), mode=mode,
                        layers=layer_sel, progress=prog, rounding=rounding, bias_correction=bool(bias_correction),
                        weight_grid=weight_grid)
    path = prof.save(STATE.workdir / f"profile_{prof.fingerprint}_{int(time.time())}.safetensors")
    STATE.install(model, src, prof, path)
    made = f"{views.settings_text(prof.settings())}, {prof.meta.get('seconds')} s"
    return (f"Profiled `{src}`: G={prof.num_groups}, bits {prof.bits.tolist()}, {made}. "
            "Download it below to keep it."), True


@safe
def measure_gain(progress=gr.Progress()):
    """Measure the trajectory gain of the loaded model over the profile's groups (``dadq.trajectory_gain``
    at its default settings, those of the shipped gains), for the group weight power; Cancel keeps the
    previous gain. Returns the gain's status text."""
    _need_profile()
    model, prof = STATE.model, STATE.profile
    STATE.cancel.clear()
    report = throttled(progress)

    def prog(frac, text):
        if STATE.cancel.is_set():
            raise Cancelled()
        report(frac, text)

    progress(0.0, desc=f"trajectory gain: {prof.num_groups + 1} sampling runs")
    try:
        gain = dadq.trajectory_gain(model, prof.groups, progress=prog)
    except Cancelled:
        raise ValueError("Measuring the trajectory gain was cancelled; the previous gain is kept.") from None
    if STATE.model is model and STATE.profile is prof:  # a model loaded meanwhile has its own gain
        STATE.gain, STATE.gain_source = gain, gain_origin("measured in this session", GAIN_SETTINGS["n"], "ddim",
                                                          GAIN_SETTINGS["steps"])
    return views.gain_text()


def cancel_sweep():
    """Stop the quality sweep (gradio cancels the event too); nothing is cached for it. Returns the
    sweep's status line: a cancelled event shows no error of its own."""
    STATE.sweep_cancel.set()
    return "Quality sweep cancelled; nothing was cached for it. The table and plot show the last finished sweep."


def cancel_profile():
    STATE.cancel.set()
    return "Cancelled: the previous profile is still loaded."


def cancel_gain():
    STATE.cancel.set()
    return "Cancelled: " + views.gain_text()


PROFILE_FIX = ("Upload a .safetensors profile written by dadq (the Model tab's 'Download profile', or "
               "`dadq profile --out FILE`).")
ALLOC_FIX = ("Upload a .json allocation exported by dadq (the Model tab's 'Export allocation', or "
             "`dadq allocate --out FILE`) from this profile.")


@safe
def upload_profile(file):
    """Use an uploaded profile; it must belong to the loaded (or pending) model."""
    path = _upload(file)
    try:
        prof = dadq.Profile.load(path)
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise _named(e, path, PROFILE_FIX) from None
    model, src = STATE.model, STATE.model_src
    if STATE.pending is not None:
        try:
            prof.check_model(STATE.pending[0])
            model, src = STATE.pending
        except ValueError:
            pass
    if model is None:
        raise ValueError("load a model before uploading its profile.")
    try:
        prof.check_model(model)
    except ValueError as e:
        raise _named(e, path, "") from None
    keep = STATE.workdir / f"uploaded_{int(time.time() * 1000)}_{path.name}"
    shutil.copyfile(path, keep)
    STATE.install(model, src, prof, keep)
    return f"Using uploaded profile `{path.name}` for `{src}`.", True


@safe
def upload_allocation(file):
    """Use an uploaded allocation JSON (from the loaded profile): the views and the controls follow it."""
    _need_profile()
    path = _upload(file)
    try:
        alloc = dadq.Allocation.load(path, profile=STATE.profile)  # checked against the loaded profile
        alloc.check(model=STATE.model)
    except (ValueError, OSError, UnicodeDecodeError) as e:
        raise _named(e, path, ALLOC_FIX) from None
    requested = alloc.budget if isinstance(alloc.budget, (int, float)) and alloc.lam is None else None
    STATE.show(alloc, requested, None)
    status = f"Using uploaded allocation `{path.name}` ({alloc_label(alloc)})."
    return (*views.allocation_views(), *reset_controls(), status)


@safe
def export_profile():
    _need_profile()
    out = STATE.workdir / f"dadq_profile_{STATE.profile.fingerprint}.safetensors"
    if STATE.profile_path is not None and Path(STATE.profile_path).is_file():
        shutil.copyfile(STATE.profile_path, out)
    else:
        STATE.profile.save(out)
    return str(out)


@safe
def export_allocation():
    _need_profile()
    a = STATE.alloc
    out = STATE.workdir / f"dadq_allocation_{a.method}_{a.target}_{float(a.group_avg_bits.mean()):.2f}b.json"
    a.save(out)
    return str(out)


def _csv(frame, name: str) -> str:
    out = STATE.workdir / name
    frame.to_csv(out, index=False)
    return str(out)


@safe
def export_allocation_csv():
    """The displayed allocation as a tidy CSV (Allocation.to_frame: layer, kind, group, bits, D, size)."""
    _need_profile()
    a = STATE.alloc
    return _csv(a.to_frame(), f"dadq_allocation_{a.method}_{a.target}_{float(a.group_avg_bits.mean()):.2f}b.csv")


@safe
def export_profile_csv():
    """The profile's RD curves as a tidy CSV (Profile.to_frame: layer, kind, group, bits, D, size)."""
    _need_profile()
    return _csv(STATE.profile.to_frame(), f"dadq_curves_{STATE.profile.fingerprint}.csv")


@safe
def export_fid_csv():
    """Every FID run of this session as CSV."""
    if not STATE.fid_rows:
        raise ValueError("no FID run yet: press 'Compute FID' first.")
    return _csv(views.fid_table(), "dadq_fid_history.csv")


@safe
def export_figures(group=views.MEAN_GROUP, x="bits", view="layers", layer=None, rank_bits=None, top_k=0,
                   act_layer=None, style="overlay", act_bits=None, log_y=True):
    """Every figure on display (RD curves and activations as their controls set them, the allocation
    heatmap, the trade-off, B − A when A is pinned) as SVG and PNG at publication size
    (dadq.plots.save_images: plotly.js in the local chromium)."""
    _need_profile()
    figs = {"rd_curves": sensitivity(group, x, view, layer, rank_bits, top_k)[0],
            "activations": activations(act_layer, style, act_bits, log_y)[0],
            "allocation_heatmap": views.heatmap_view(), "tradeoff": views.tradeoff_view()}
    if STATE.pinned is not None:
        figs["b_minus_a"] = plots.allocation_diff_heatmap(STATE.profile, STATE.pinned, STATE.alloc)
    folder = STATE.workdir / f"figures_{int(time.time() * 1000)}"
    return [str(p) for p in plots.save_images(figs, folder, width=plots.PUBLICATION_SIZE[0])]
