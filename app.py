"""dadq analysis app: a Gradio Blocks UI over the dadq core.

    python app.py                                  # the shipped default model and profile, http://127.0.0.1:7860
    python app.py --model PATH_OR_HUB_ID --profile FILE [--host 127.0.0.1] [--port 7860] [--share]

This file only wires widgets to dadq calls; figures come from ``dadq.plots``. Models, profiles and
the current allocation are module-global (``STATE``), never in ``gr.State``. Every event has an
``api_name``, so ``gradio_client`` can drive it:

  light (own queues, stay responsive):  /sensitivity /activations /allocate /compare_solvers
      /upload_allocation /export_allocation /export_profile /cancel_profile
  heavy (one queue, concurrency_id "heavy", one at a time, with progress):  /generate /fid
      /additivity /load_model /run_profile /upload_profile

Bad input (an infeasible budget, a wrong path, a profile of another model, a corrupt upload) raises
``gr.Error`` naming the problem and the fix; the app keeps its last good state.
"""
from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import argparse  # noqa: E402
import functools  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

import dadq  # noqa: E402  (torch + diffusers: the bulk of start-up)
from dadq import plots  # noqa: E402
from dadq.features import ARCH as FID_FEATURE_NET, IMAGE_SHAPE as FID_IMAGE_SHAPE  # noqa: E402
from dadq.metrics import FID_LABEL  # noqa: E402  (cheap: torchmetrics is loaded by dadq already)

MAX_FILE_SIZE = "64mb"  # gradio's upload limit (launch(max_file_size=...))
MAX_UPLOAD_BYTES = 64 * 1024 * 1024  # checked again in the handlers
HEAVY = dict(concurrency_id="heavy", concurrency_limit=1)  # profile, sampling, FID, model loads
DEFAULT_BUDGET = 4.0
CSS = ".dadq-pixelated img { image-rendering: pixelated; }"
MEAN_GROUP = -1
FID_COLUMNS = ["model", FID_LABEL, "samples", "sampler", "seed", "feature network", "reference"]

TARGETS = [("joint W+A budget", "wa"), ("separate W and A budgets", "separate"), ("weights only (A stays FP)", "w"),
           ("activations only (W stays FP)", "a")]
DRIVES = [("size budget (average bits)", "budget"), ("slope λ (log scale)", "lambda")]
METHODS = ["lagrangian", "exact", "greedy", "uniform"]
WEIGHT_MODES = [("per-group weights (paper; stores every copy)", "per-group"), ("shared weights (one copy)", "shared")]


class Cancelled(Exception):
    """Raised from the profile progress callback when the user presses Cancel."""


class AppState:
    """Everything heavy the app holds: one model, its profile, the current allocation, samples."""

    def __init__(self):
        self.model = None
        self.model_src = None
        self.profile = None
        self.profile_path: Path | None = None
        self.pending = None  # (model, src): loaded, but no profile of it yet; the views show the old pair
        self.alloc = None
        self.requested = None  # the budget the user asked for (to show the Lagrangian's unused gap)
        self.qmodel = None
        self.qmodel_for = None  # the Allocation the cached qmodel follows
        self.samples = None  # dict(fp, q, seed, n, sampler, steps)
        self.sweeps: dict = {}
        self.cancel = threading.Event()
        self.workdir = Path(tempfile.mkdtemp(prefix="dadq-app-"))

    # -- derived -----------------------------------------------------------------------------
    def sweep(self, target: str):
        key = (self.profile.fingerprint, id(self.profile), target)
        if key not in self.sweeps:
            self.sweeps[key] = dadq.rd_sweep(self.profile, target)
        return self.sweeps[key]

    def qmodel_now(self):
        if self.qmodel is None or self.qmodel_for is not self.alloc:
            self.qmodel = dadq.quantize(self.model, self.profile, self.alloc)
            self.qmodel_for = self.alloc
        return self.qmodel

    def install(self, model, src, profile, profile_path=None):
        """Make (model, profile) current, with the default allocation. Nothing changes on error."""
        profile.check_model(model)
        alloc = dadq.allocate(profile, budget=default_budget(profile))
        self.model, self.model_src, self.profile, self.profile_path = model, src, profile, profile_path
        self.alloc, self.requested = alloc, default_budget(profile)
        self.pending = None
        self.qmodel = self.qmodel_for = self.samples = None
        self.sweeps = {}


STATE = AppState()


# --- small helpers ------------------------------------------------------------------------------

def default_budget(profile) -> float:
    lo, hi = float(profile.bits.min()), float(profile.bits.max())
    return min(max(DEFAULT_BUDGET, lo), hi)


def budget_range(profile) -> tuple[float, float]:
    """Slider range in average bits: one bit below the smallest feasible budget, so the infeasible
    region (and its message) can be reached, up to the top profiled width."""
    return max(0.5, float(profile.bits.min()) - 1.0), float(profile.bits.max())


def find_profile(src: str) -> Path | None:
    """The profile that ships with a model: assets/default/profile.safetensors for 'default', else
    profile.safetensors inside a local model folder."""
    if src == "default":
        path = dadq.models.DEFAULT_MODEL_DIR / "profile.safetensors"
    else:
        folder = Path(src).expanduser()
        path = folder / "profile.safetensors" if folder.is_dir() else None
    return path if path is not None and path.is_file() else None


def parse_bits(text: str) -> list[int]:
    text = str(text).strip()
    try:
        if "-" in text:
            lo, hi = text.split("-")
            return list(range(int(lo), int(hi) + 1))
        return [int(b) for b in text.replace(" ", "").split(",") if b]
    except ValueError:
        raise ValueError(f"bits {text!r}: write a range like 2-8 or a list like 2,4,8.") from None


def _check_upload(path) -> Path:
    if path is None:
        raise ValueError("no file was uploaded; choose a file first.")
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise ValueError(f"{path.name} is {size / 1e6:.1f} MB; uploads are limited to {MAX_UPLOAD_BYTES / 1e6:.0f} MB.")
    return path


def throttled(progress, scale: float = 1.0, every_s: float = 0.25):
    """progress(frac, text) at most every ``every_s`` seconds: a gr.Progress update per denoising
    step floods the event stream for no visible gain."""
    last = [0.0]

    def report(frac, text):
        now = time.perf_counter()
        if now - last[0] >= every_s or frac >= 1.0:
            last[0] = now
            progress(scale * frac, desc=text)

    return report


def _df(table) -> pd.DataFrame:
    headers, rows = table
    return pd.DataFrame(rows, columns=headers)


def _need_profile():
    if STATE.profile is None or STATE.model is None:
        raise ValueError("no model and profile are loaded; load one in the Model tab.")


def safe(fn):
    """Bad input -> gr.Error with the problem and the fix; never a traceback in the UI."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except Cancelled:
            raise gr.Error("Profiling was cancelled; the previous profile is still loaded.", print_exception=False)
        except (ValueError, FileNotFoundError, KeyError) as e:
            raise gr.Error(str(e).strip("'\""), print_exception=False) from None
        except Exception as e:  # an unexpected failure: still one readable line, state unchanged
            raise gr.Error(f"{type(e).__name__}: {e}. The app kept its last good state.") from None

    return wrapper


# --- status text ----------------------------------------------------------------------------------

def header_md() -> str:
    p, m = STATE.profile, STATE.model
    if p is None or m is None:
        return "### dadq · no model loaded"
    c, h, w = m.sample_shape
    meta = p.meta or {}
    src = f"`{STATE.profile_path}`" if STATE.profile_path else "in memory"
    text = (f"**Model** `{STATE.model_src}` · fingerprint `{m.fingerprint()}` · {c}×{h}×{w} · T={m.num_timesteps} · "
            f"{p.num_layers} quantizable layers &nbsp;|&nbsp; **Profile** G={p.num_groups} · bits "
            f"{int(p.bits.min())}–{int(p.bits.max())} · mode {meta.get('mode', '?')} · "
            f"calib {meta.get('calib_per_group', '?')}/group · {src}")
    if STATE.pending is not None:
        text += (f"\n\n⚠ Model `{STATE.pending[1]}` is loaded but has no profile yet: run one (Model tab) or upload "
                 "one. The views still show the model above.")
    return text


def fid_note() -> str:
    if STATE.model is None:
        return ""
    shape = tuple(STATE.model.sample_shape)
    if shape != tuple(FID_IMAGE_SHAPE):
        return (f"**{FID_LABEL}** needs {'×'.join(map(str, FID_IMAGE_SHAPE))} images; this model makes "
                f"{'×'.join(map(str, shape))}, so FID is not available here. The app does not resize: scores of "
                "resized images against MNIST statistics would not mean anything.")
    return (f"**{FID_LABEL}**: FP and quantized samples come from the same sampler, steps and seeds; compare "
            "scores only at equal sample counts (small-n FID is biased upwards).")


# --- view handlers (module-level; the UI and gradio_client call the same functions) -------------------

@safe
def sensitivity(group, x="bits", view="layers", layer=None, rank_bits=None):
    """View 1: RD curves (all layers in one group, or one layer across groups) and the ranking."""
    _need_profile()
    p = STATE.profile
    group = MEAN_GROUP if group is None else int(group)
    if view == "groups":
        fig = plots.rd_curves_groups(p, layer or plots.most_sensitive_layer(p), x=x)
    else:
        fig = plots.rd_curves(p, group=group, x=x)
    return fig, _df(plots.sensitivity_table(p, group, None if rank_bits is None else int(rank_bits)))


@safe
def activations(layer=None, style="overlay", bits=None, log_y=True):
    """View 2: a layer's input distribution per timestep group, and each group's range table."""
    _need_profile()
    p = STATE.profile
    layer = layer or plots.most_group_dependent_layer(p)
    bits = None if bits in (None, "") else int(bits)
    return (plots.activation_hist(p, layer, style=style, bits=bits, log_y=bool(log_y)),
            _df(plots.activation_table(p, layer, bits)))


def _allocate(drive, budget, log_lam, w_budget, a_budget, target, method, weight_mode):
    """(Allocation, requested budget) from the UI's controls."""
    _need_profile()
    p = STATE.profile
    if target not in ("wa", "separate", "w", "a"):
        raise ValueError(f"target={target!r}: choose one of wa, separate, w, a.")
    core_target = "wa" if target == "separate" else target
    if drive == "lambda":
        lam = 10.0 ** float(log_lam)
        return dadq.allocate(p, lam=lam, target=core_target, weight_mode=weight_mode), None
    if drive != "budget":
        raise ValueError(f"drive={drive!r}: choose 'budget' or 'lambda'.")
    if target == "separate":
        return (dadq.allocate(p, w_budget=float(w_budget), a_budget=float(a_budget), target="wa", method=method,
                              weight_mode=weight_mode), None)
    return dadq.allocate(p, budget=float(budget), target=core_target, method=method, weight_mode=weight_mode), \
        float(budget)


def allocation_views():
    p, a = STATE.profile, STATE.alloc
    return (plots.allocation_heatmap(p, a), plots.tradeoff(p, STATE.sweep(a.target), a, a.target),
            plots.allocation_summary(p, a, STATE.requested))


@safe
def allocate(drive="budget", budget=DEFAULT_BUDGET, log_lam=0.0, w_budget=DEFAULT_BUDGET, a_budget=DEFAULT_BUDGET,
             target="wa", method="lagrangian", weight_mode="per-group"):
    """Views 3+4: solve the allocation; returns (heatmap, trade-off curve, size summary)."""
    alloc, requested = _allocate(drive, budget, log_lam, w_budget, a_budget, target, method, weight_mode)
    STATE.alloc, STATE.requested = alloc, requested
    return allocation_views()


@safe
def compare_solvers(drive="budget", budget=DEFAULT_BUDGET, log_lam=0.0, w_budget=DEFAULT_BUDGET,
                    a_budget=DEFAULT_BUDGET, target="wa", method="lagrangian", weight_mode="per-group"):
    """All four solvers at the current budget (for λ: the size the λ point uses): the Lagrangian's gap
    to the exact optimum shown, not hidden."""
    _need_profile()
    if drive == "lambda":
        alloc, _ = _allocate(drive, budget, log_lam, w_budget, a_budget, target, method, weight_mode)
        drive, budget = "budget", float(alloc.group_avg_bits.mean())
        target = "wa" if target == "separate" else target
    results = []
    for m in METHODS:
        t0 = time.perf_counter()
        try:
            a, _ = _allocate(drive, budget, log_lam, w_budget, a_budget, target, m, weight_mode)
        except ValueError as e:
            a = str(e)
        results.append((m, a, time.perf_counter() - t0))
    return _df(plots.solver_table(results))


@safe
def additivity():
    """View 4: the measured distortion of the whole allocation beside the predicted sum, per group."""
    _need_profile()
    res = dadq.additivity(STATE.model, STATE.profile, STATE.alloc)
    ratio = res["ratio"]
    md = (f"Measured on the profile's calibration inputs. Correlation predicted↔measured over groups: "
          f"**{res['correlation']:.3f}**; measured / predicted: mean **{ratio.mean():.2f}**, range "
          f"{ratio.min():.2f}–{ratio.max():.2f}. Ratios near 1 mean the per-quantizer curves add up.")
    return plots.additivity_plot(res, plots.group_labels(STATE.profile)), md


def _sampler_steps(sampler, steps):
    if sampler not in ("ddim", "ddpm"):
        raise ValueError(f"sampler={sampler!r}: choose 'ddim' or 'ddpm'.")
    return 0 if sampler == "ddpm" else int(steps)


@safe
def generate(seed=0, n=16, sampler="ddim", steps=50, progress=gr.Progress()):
    """View 5: FP and quantized samples from identical noise, per-pair PSNR/SSIM, PNG grids."""
    _need_profile()
    n, seed = int(n), int(seed)
    if not 1 <= n <= 256:
        raise ValueError(f"count {n}: ask for 1 to 256 samples.")
    steps = _sampler_steps(sampler, steps)
    qmodel = STATE.qmodel_now()
    timings = {}
    fp, q = dadq.sample_pair(STATE.model, qmodel, n=n, steps=steps, seed=seed, sampler=sampler,
                             progress=throttled(progress), timings=timings)
    STATE.samples = dict(fp=fp, q=q, seed=seed, n=n, sampler=sampler, steps=steps)
    psnr, ssim = dadq.paired_psnr_ssim(fp, q)
    fp8, q8 = dadq.images.to_uint8(fp), dadq.images.to_uint8(q)
    fp_items = [(fp8[i], f"#{i} FP") for i in range(n)]
    q_items = [(q8[i], f"#{i} PSNR {psnr[i]:.1f} dB · SSIM {ssim[i]:.3f}") for i in range(n)]
    fmt = lambda v: "inf" if v == float("inf") else round(float(v), 3)  # noqa: E731
    table = pd.DataFrame([[i, fmt(psnr[i]), round(float(ssim[i]), 4)] for i in range(n)],
                         columns=["pair", "PSNR (dB)", "SSIM"])
    stamp = f"{int(time.time() * 1000)}"
    grids = [str(dadq.images.save_grid(fp, STATE.workdir / f"fp_grid_{stamp}.png")),
             str(dadq.images.save_grid(q, STATE.workdir / f"quantized_grid_{stamp}.png"))]
    t_fp, t_q = timings["fp_s"], timings["quantized_s"]
    how = "side by side, each on half the CPU threads" if timings["parallel"] else "one after the other"
    finite = psnr[psnr != float("inf")]
    name = f"DDIM-{steps}" if sampler == "ddim" else f"DDPM-{STATE.model.num_timesteps}"
    md = (f"{n} + {n} samples, {name}, seed {seed}, identical noise. Time: FP {t_fp:.2f} s, quantized {t_q:.2f} s "
          f"(×{t_q / max(t_fp, 1e-9):.2f}; {how}). Mean PSNR {finite.mean() if finite.size else float('inf'):.2f} dB, "
          f"mean SSIM {ssim.mean():.4f}. Allocation: {STATE.alloc.method}, "
          f"{float(STATE.alloc.group_avg_bits.mean()):.3f} avg bits ({STATE.alloc.target}, {STATE.alloc.weight_mode}).")
    return fp_items, q_items, table, grids, md


@safe
def fid(n=256, seed=0, sampler="ddim", steps=50, feature="mnist", progress=gr.Progress()):
    """View 5: FID of FP and quantized samples (same sampler, steps, seeds). feature 'mnist' (the
    default, FID_LABEL) or 'inception' (torchmetrics' Inception FID; needs local weights)."""
    _need_profile()
    n, seed = int(n), int(seed)
    label = dadq.metrics.fid_label(feature)  # raises on an unknown feature
    shape = tuple(STATE.model.sample_shape)
    if feature == "mnist" and shape != tuple(FID_IMAGE_SHAPE):
        raise ValueError(f"{FID_LABEL} needs {'x'.join(map(str, FID_IMAGE_SHAPE))} images, but this model makes "
                         f"{'x'.join(map(str, shape))}. Load an MNIST-sized model (e.g. the default) to compute FID; "
                         "the app does not resize images.")
    if not 2 <= n <= 10000:
        raise ValueError(f"n={n}: FID needs 2 to 10000 samples.")
    if feature == "inception":  # fail before sampling, not after (core wish: a public availability check)
        dadq.metrics._inception_weights(None)
    steps = _sampler_steps(sampler, steps)
    qmodel = STATE.qmodel_now()
    fp, q = dadq.sample_pair(STATE.model, qmodel, n=n, steps=steps, seed=seed, sampler=sampler,
                             progress=throttled(progress, scale=0.9))
    progress(0.9, desc="FID features (FP)")
    f_fp = dadq.metrics.fid(fp, feature=feature)
    progress(0.95, desc="FID features (quantized)")
    f_q = dadq.metrics.fid(q, feature=feature)
    name = f"DDIM-{steps}" if sampler == "ddim" else f"DDPM-{STATE.model.num_timesteps}"
    alloc = STATE.alloc
    net = FID_FEATURE_NET if feature == "mnist" else dadq.metrics.FID_SETTINGS[feature]["feature_net"]
    ref = "MNIST test set (10,000)"
    return pd.DataFrame([
        ["FP", round(f_fp, 3), n, name, seed, net, ref],
        [f"quantized ({alloc.method}, {float(alloc.group_avg_bits.mean()):.2f} avg bits)", round(f_q, 3), n, name,
         seed, net, ref],
    ], columns=["model", label] + FID_COLUMNS[2:])


@safe
def load_model(src="default", profile_path="", progress=gr.Progress()):
    """View 6: load a model (and its profile when one is found). Returns (status text, changed?)."""
    src = (src or "").strip()
    if not src:
        raise ValueError("no model given: enter 'default', a local diffusers folder, or a hub id.")
    progress(0.1, desc=f"loading {src}")
    model = dadq.load_model(src)
    explicit = (profile_path or "").strip()
    path = Path(explicit).expanduser() if explicit else find_profile(src)
    if path is None:
        STATE.pending = (model, src)
        return (f"Loaded `{src}` (fingerprint `{model.fingerprint()}`), but it has no profile yet. Run a profile "
                "below, or upload one. The views keep showing the previous model until then."), False
    progress(0.6, desc=f"loading profile {path}")
    profile = dadq.Profile.load(path)
    profile.check_model(model)
    STATE.install(model, src, profile, path)
    return f"Loaded `{src}` with profile `{path}`.", True


@safe
def run_profile(groups=10, bits="2-8", calib=8, mode="fast", layers="", progress=gr.Progress()):
    """View 6: profile the loaded (or pending) model; Cancel leaves the previous profile in place."""
    if STATE.model is None and STATE.pending is None:
        raise ValueError("no model is loaded; load one first.")
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
                        layers=layer_sel, progress=prog)
    path = prof.save(STATE.workdir / f"profile_{prof.fingerprint}_{int(time.time())}.safetensors")
    STATE.install(model, src, prof, path)
    return (f"Profiled `{src}`: G={prof.num_groups}, bits {prof.bits.tolist()}, {prof.meta.get('seconds')} s. "
            "Download it below to keep it."), True


def cancel_profile():
    STATE.cancel.set()
    return "Cancelled: the previous profile is still loaded."


@safe
def upload_profile(file):
    """View 6: use an uploaded profile; it must belong to the loaded (or pending) model."""
    path = _check_upload(file)
    prof = dadq.Profile.load(path)
    if STATE.pending is not None:
        model, src = STATE.pending
        try:
            prof.check_model(model)
        except ValueError:
            model, src = STATE.model, STATE.model_src
    else:
        model, src = STATE.model, STATE.model_src
    if model is None:
        raise ValueError("load a model before uploading its profile.")
    prof.check_model(model)  # names the mismatch and the fix
    keep = STATE.workdir / f"uploaded_{int(time.time() * 1000)}_{path.name}"
    shutil.copyfile(path, keep)
    STATE.install(model, src, prof, keep)
    return f"Using uploaded profile `{path.name}` for `{src}`.", True


@safe
def upload_allocation(file):
    """View 6: use an uploaded allocation JSON (it must come from the loaded profile)."""
    _need_profile()
    path = _check_upload(file)
    alloc = dadq.Allocation.load(path)
    alloc.check_profile(STATE.profile)
    p = STATE.profile
    want = (p.num_groups, p.num_layers)
    allowed = set(int(b) for b in p.bits) | {32}
    for name, arr in (("w_bits", alloc.w_bits), ("a_bits", alloc.a_bits)):
        if tuple(arr.shape) != want:
            raise ValueError(f"{path.name}: {name} has shape {tuple(arr.shape)}, the profile needs {want}.")
        bad = set(int(b) for b in arr.ravel()) - allowed
        if bad:
            raise ValueError(f"{path.name}: {name} uses bits {sorted(bad)} that the profile does not hold "
                             f"({sorted(allowed - {32})} or 32 = FP).")
    STATE.alloc, STATE.requested = alloc, None
    return allocation_views()


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


# --- the UI -------------------------------------------------------------------------------------------

HOW_IT_WORKS = """
### How it works

**1 · Timestep groups.** A diffusion model denoises in T steps (T = 1000 for DDPM). Early steps
(large t) see almost pure noise, late steps (small t) nearly clean images, and the inputs of a layer
look very different across them: compare the groups in the *Activations* tab. So the T steps are cut
into G groups (t 0–99, 100–199, ...), and each group gets its own activation ranges and its own bits.

**2 · Rate–distortion curves.** For one group g, quantize a single quantizer (one layer's weights
W, or its input activations A) to b bits, keep everything else in full precision, and measure how
much the predicted noise changes: D = (1 − SSIM) + MSE of ε. Repeating this for every layer and
bit width gives one curve D_{g,l}(b) per quantizer, against its size s_l(b) = elements × b bits
(*Layer sensitivity* tab). Steep curves are sensitive layers.

**3 · Additivity.** Quantizing many layers at once costs, to first order, the sum of their
individual D. The *measure additivity* button checks that on the loaded model.

**4 · Equal slopes.** Minimising Σ D_{g,l}(b_l) under a size budget Σ s_l(b_l) ≤ B has a classic
answer: at the optimum every curve has the same slope λ (distortion saved per extra bit). For a
given λ each quantizer simply picks argmin_b D + λ·s, which is instant; sweeping λ traces the best
trade-off (the *Total RD trade-off* curve) and a budget maps to λ by bisection. The λ sweep only
reaches points on the lower convex hull, so the *exact* solver (a knapsack) can do slightly better
in between: *compare solvers* shows the gap.

**5 · Storage honesty.** With *per-group* weights (the paper) a layer may use different weight bits
in different groups, and a deployed model must store every distinct copy; the stored size counts
them. *Shared* weights keep one copy and allocate only activations per group.
"""


def view_values() -> dict[str, dict]:
    """Props of every view component for the current (model, profile, allocation), keyed by name:
    used for the initial page and, as updates, whenever the model or profile changes."""
    p = STATE.profile
    bits = [int(b) for b in p.bits]
    groups = [("mean over groups", MEAN_GROUP)] + [(lab, g) for g, lab in enumerate(plots.group_labels(p))]
    layers = plots.layer_choices(p)
    s_layer, a_layer = plots.most_sensitive_layer(p), plots.most_group_dependent_layer(p)
    a_bits = 4 if 4 in bits else bits[len(bits) // 2]
    s_fig, s_df = sensitivity(MEAN_GROUP, "bits", "layers", s_layer, bits[0])
    a_fig, a_df = activations(a_layer, "overlay", a_bits, True)
    lo, hi = budget_range(p)
    b0 = default_budget(p)
    l_lo, l_hi, l_mid = plots.lambda_range([STATE.sweep(t) for t in ("wa", "w", "a")])
    h_fig, t_fig, s_md = allocation_views()
    return {
        "header": dict(value=header_md()),
        "sens_view": dict(value="layers"), "sens_x": dict(value="bits"),
        "sens_group": dict(choices=groups, value=MEAN_GROUP),
        "sens_layer": dict(choices=layers, value=s_layer),
        "sens_bits": dict(choices=bits, value=bits[0]),
        "sens_plot": dict(value=s_fig), "sens_table": dict(value=s_df),
        "act_layer": dict(choices=layers, value=a_layer), "act_style": dict(value="overlay"),
        "act_bits": dict(choices=bits, value=a_bits), "act_log": dict(value=True),
        "act_plot": dict(value=a_fig), "act_table": dict(value=a_df),
        "drive": dict(value="budget"), "target": dict(value="wa"), "method": dict(value="lagrangian"),
        "weight_mode": dict(value="per-group"),
        "budget": dict(minimum=lo, maximum=hi, value=b0, visible=True),
        "w_budget": dict(minimum=lo, maximum=hi, value=b0, visible=False),
        "a_budget": dict(minimum=lo, maximum=hi, value=b0, visible=False),
        "log_lam": dict(minimum=l_lo, maximum=l_hi, value=l_mid, visible=False),
        "heatmap": dict(value=h_fig), "trade_plot": dict(value=t_fig), "summary": dict(value=s_md),
        "add_plot": dict(value=plots.empty_figure("press 'measure additivity' to run the model")),
        "add_md": dict(value=""),
        "solver_df": dict(value=pd.DataFrame(columns=plots.solver_table([])[0])),
        "steps": dict(maximum=STATE.model.num_timesteps),
        "fid_info": dict(value=fid_note()),
        "p_groups": dict(value=p.num_groups), "p_bits": dict(value=f"{bits[0]}-{bits[-1]}"),
    }


def build_demo(model_src: str = "default", profile_path: str | None = None) -> gr.Blocks:
    """Load ``model_src`` with its profile (``profile_path``, or the one shipped beside the model) and
    build the Blocks. Raises ValueError with a clear message if either can't be loaded."""
    model = dadq.load_model(model_src)
    path = Path(profile_path).expanduser() if profile_path else find_profile(model_src)
    if path is None:
        raise ValueError(f"no profile for model {model_src!r}: pass --profile FILE, or make one with "
                         f"`python -m dadq profile --model {model_src} --out profile.safetensors`.")
    STATE.install(model, model_src, dadq.Profile.load(path), path)
    V = view_values()
    C: dict[str, gr.components.Component] = {}  # name -> component, for refreshes

    def reg(name, comp):
        C[name] = comp
        return comp

    with gr.Blocks(title="dadq: distribution-aware diffusion quantization", analytics_enabled=False) as demo:
        gr.Markdown("## dadq · distribution-aware mixed-precision quantization of diffusion models")
        reg("header", gr.Markdown(elem_id="dadq-header", **V["header"]))

        with gr.Tabs():
            # ---- 1. layer sensitivity ----
            with gr.Tab("Layer sensitivity", id="sensitivity"):
                with gr.Row():
                    sens_view = reg("sens_view", gr.Radio(
                        [("all layers, one group", "layers"), ("one layer, all groups", "groups")], label="view",
                        scale=2, **V["sens_view"]))
                    sens_group = reg("sens_group", gr.Dropdown(label="timestep group", scale=2, **V["sens_group"]))
                    sens_layer = reg("sens_layer", gr.Dropdown(label="layer (for 'one layer, all groups')", scale=3,
                                                               **V["sens_layer"]))
                    sens_x = reg("sens_x", gr.Radio([("bits", "bits"), ("size", "size")], label="x axis", scale=1,
                                                    **V["sens_x"]))
                    sens_bits = reg("sens_bits", gr.Dropdown(label="rank at bits", scale=1, **V["sens_bits"]))
                sens_plot = reg("sens_plot", gr.Plot(label="RD curves", elem_id="rd-plot", **V["sens_plot"]))
                sens_table = reg("sens_table", gr.Dataframe(
                    label="layers ranked by sensitivity (D_W + D_A at the chosen bits; ★ = conv_in/out, time "
                          "embedding, shortcuts)", interactive=False, max_height=360, **V["sens_table"]))

            # ---- 2. activation distributions ----
            with gr.Tab("Activations", id="activations"):
                with gr.Row():
                    act_layer = reg("act_layer", gr.Dropdown(label="layer (default: the one whose range varies "
                                                                   "most across groups)", scale=3, **V["act_layer"]))
                    act_style = reg("act_style", gr.Radio([("overlaid", "overlay"), ("ridge", "ridge")],
                                                          label="style", scale=1, **V["act_style"]))
                    act_bits = reg("act_bits", gr.Dropdown(label="clipped range at bits", scale=1, **V["act_bits"]))
                    act_log = reg("act_log", gr.Checkbox(label="log density", scale=1, **V["act_log"]))
                act_plot = reg("act_plot", gr.Plot(label="input distribution per timestep group", elem_id="act-plot",
                                                   **V["act_plot"]))
                act_table = reg("act_table", gr.Dataframe(label="calibrated range per group (min, max, clip)",
                                                          interactive=False, max_height=420, **V["act_table"]))

            # ---- 3 + 4. budget, λ and the allocation ----
            with gr.Tab("Budget & allocation", id="allocation"):
                with gr.Row():
                    with gr.Column(scale=1, min_width=340):
                        drive = reg("drive", gr.Radio(DRIVES, label="what drives the allocation", **V["drive"]))
                        target = reg("target", gr.Radio(TARGETS, label="target", **V["target"]))
                        budget = reg("budget", gr.Slider(label="size budget (average bits per element)", step=0.05,
                                                         elem_id="budget-slider", **V["budget"]))
                        w_budget = reg("w_budget", gr.Slider(label="W budget (average bits)", step=0.05,
                                                             elem_id="w-budget-slider", **V["w_budget"]))
                        a_budget = reg("a_budget", gr.Slider(label="A budget (average bits)", step=0.05,
                                                             elem_id="a-budget-slider", **V["a_budget"]))
                        log_lam = reg("log_lam", gr.Slider(label="log10 λ (distortion per average bit)", step=0.05,
                                                           elem_id="lambda-slider", **V["log_lam"]))
                        method = reg("method", gr.Dropdown(METHODS, label="solver (a λ always uses lagrangian)",
                                                           **V["method"]))
                        weight_mode = reg("weight_mode", gr.Radio(WEIGHT_MODES, label="weight mode",
                                                                  **V["weight_mode"]))
                        summary = reg("summary", gr.Markdown(elem_id="alloc-summary", **V["summary"]))
                        with gr.Row():
                            compare_btn = gr.Button("compare solvers", size="sm", elem_id="compare-btn")
                            add_btn = gr.Button("measure additivity", size="sm", elem_id="additivity-btn")
                        solver_df = reg("solver_df", gr.Dataframe(label="all solvers at this budget",
                                                                  interactive=False, elem_id="solver-table",
                                                                  **V["solver_df"]))
                    with gr.Column(scale=2):
                        heatmap = reg("heatmap", gr.Plot(label="bit allocation", elem_id="heatmap", **V["heatmap"]))
                        trade_plot = reg("trade_plot", gr.Plot(label="total RD trade-off", elem_id="tradeoff",
                                                               **V["trade_plot"]))
                        add_plot = reg("add_plot", gr.Plot(label="additivity", elem_id="additivity",
                                                           **V["add_plot"]))
                        add_md = reg("add_md", gr.Markdown(**V["add_md"]))

            # ---- 5. samples ----
            with gr.Tab("Samples", id="samples"):
                with gr.Row():
                    seed = gr.Number(value=0, precision=0, minimum=0, label="seed")
                    count = gr.Slider(1, 64, value=16, step=1, label="count")
                    sampler = gr.Radio([("DDIM", "ddim"), ("DDPM (all T steps)", "ddpm")], value="ddim",
                                       label="sampler")
                    steps = reg("steps", gr.Slider(1, value=50, step=1, label="DDIM steps", **V["steps"]))
                    gen_btn = gr.Button("Generate", variant="primary", elem_id="generate-btn")
                gen_md = gr.Markdown(elem_id="generate-info")
                with gr.Row():
                    fp_gal = gr.Gallery(label="FP", format="png", columns=8, height=320, elem_id="fp-gallery",
                                        elem_classes=["dadq-pixelated"], object_fit="contain")
                    q_gal = gr.Gallery(label="quantized (same noise)", format="png", columns=8, height=320,
                                       elem_id="q-gallery", elem_classes=["dadq-pixelated"], object_fit="contain")
                with gr.Row():
                    pair_df = gr.Dataframe(pd.DataFrame(columns=["pair", "PSNR (dB)", "SSIM"]), interactive=False,
                                           label="per-pair PSNR / SSIM (quantized vs FP)", max_height=300)
                    grid_files = gr.File(label="PNG grids (FP, quantized)", file_count="multiple", interactive=False)
                gr.Markdown("---")
                reg("fid_info", gr.Markdown(**V["fid_info"]))
                with gr.Row():
                    fid_n = gr.Slider(16, 2048, value=256, step=16, label="FID samples (each of FP and quantized)")
                    fid_feature = gr.Radio([("MNIST classifier (default)", "mnist"),
                                            ("Inception-v3 (local weights)", "inception")], value="mnist",
                                           label="feature network")
                    fid_btn = gr.Button("Compute FID", elem_id="fid-btn")
                fid_df = gr.Dataframe(pd.DataFrame(columns=FID_COLUMNS), label="FID", interactive=False,
                                      elem_id="fid-table")

            # ---- 6. model ----
            with gr.Tab("Model", id="model"):
                model_status = gr.Markdown("Load a model (with the profile beside it), run a new profile, or move "
                                           "profiles and allocations in and out.", elem_id="model-status")
                with gr.Row():
                    model_box = gr.Textbox(value=model_src, label="model: 'default', a local diffusers folder, or a "
                                           "hub id (online only)", scale=3, elem_id="model-src")
                    prof_box = gr.Textbox(value="", label="profile file (optional; default: profile.safetensors "
                                          "beside the model)", scale=3)
                    load_btn = gr.Button("Load model", scale=1, elem_id="load-btn")
                gr.Markdown("#### New profile of the loaded model (fast mode measures 3 widths and fills the rest "
                            "from the noise model; exact measures all)")
                with gr.Row():
                    p_groups = reg("p_groups", gr.Number(precision=0, minimum=1, label="groups G", **V["p_groups"]))
                    p_bits = reg("p_bits", gr.Textbox(label="bits (2-8 or 2,4,8)", **V["p_bits"]))
                    p_calib = gr.Number(value=8, precision=0, minimum=1, label="calibration samples / group")
                    p_mode = gr.Radio(["exact", "fast", "naive"], value="fast", label="mode")
                    p_layers = gr.Textbox(value="", label="layers (globs, comma separated; empty = all)")
                with gr.Row():
                    prof_btn = gr.Button("Run profile", variant="primary", elem_id="profile-btn")
                    cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel-btn")
                gr.Markdown(f"#### Files (uploads up to {MAX_UPLOAD_BYTES // 2**20} MB)")
                with gr.Row():
                    prof_up = gr.File(label="upload a profile (.safetensors)", file_types=[".safetensors"])
                    alloc_up = gr.File(label="upload an allocation (.json)", file_types=[".json"])
                    with gr.Column():
                        prof_dl_btn = gr.Button("Download profile")
                        alloc_dl_btn = gr.Button("Export allocation (JSON)")
                        dl_file = gr.File(label="download", interactive=False)

            # ---- 7. how it works ----
            with gr.Tab("How it works", id="how"):
                gr.Markdown(HOW_IT_WORKS)

        # -- wiring ------------------------------------------------------------------------------
        sens_in = [sens_group, sens_x, sens_view, sens_layer, sens_bits]
        gr.on([c.input for c in sens_in], sensitivity, sens_in, [sens_plot, sens_table], api_name="sensitivity",
              trigger_mode="always_last", show_progress="minimal")
        act_in = [act_layer, act_style, act_bits, act_log]
        gr.on([c.input for c in act_in], activations, act_in, [act_plot, act_table], api_name="activations",
              trigger_mode="always_last", show_progress="minimal")

        # Allocation work runs on slider *release* (and on discrete control input), never on .change.
        alloc_in = [drive, budget, log_lam, w_budget, a_budget, target, method, weight_mode]
        gr.on([budget.release, log_lam.release, w_budget.release, a_budget.release, drive.input, target.input,
               method.input, weight_mode.input], allocate, alloc_in, [heatmap, trade_plot, summary],
              api_name="allocate", trigger_mode="always_last", show_progress="minimal")

        def toggle_controls(drive_v, target_v):
            lam = drive_v == "lambda"
            sep = target_v == "separate" and not lam
            return (gr.update(visible=not lam and not sep), gr.update(visible=sep), gr.update(visible=sep),
                    gr.update(visible=lam))

        gr.on([drive.change, target.change], toggle_controls, [drive, target], [budget, w_budget, a_budget, log_lam],
              api_name="toggle_controls", api_visibility="private", queue=False, show_progress="hidden")

        compare_btn.click(compare_solvers, alloc_in, solver_df, api_name="compare_solvers")
        add_btn.click(additivity, None, [add_plot, add_md], api_name="additivity", **HEAVY)
        gen_btn.click(generate, [seed, count, sampler, steps], [fp_gal, q_gal, pair_df, grid_files, gen_md],
                      api_name="generate", **HEAVY)
        fid_btn.click(fid, [fid_n, seed, sampler, steps, fid_feature], fid_df, api_name="fid", **HEAVY)

        # Model/profile changes answer with the status line first, then every refreshed view.
        refresh_out = [model_status] + list(C.values())

        def after(result):
            msg, changed = result
            out = {model_status: msg + "\n\n" + header_md(), C["header"]: header_md()}
            if changed:
                out.update({C[name]: gr.update(**props) for name, props in view_values().items()})
            return out

        @safe
        def load_model_ui(src, prof, progress=gr.Progress()):
            return after(load_model(src, prof, progress=progress))

        @safe
        def run_profile_ui(groups, bits, calib, mode, layers, progress=gr.Progress()):
            return after(run_profile(groups, bits, calib, mode, layers, progress=progress))

        @safe
        def upload_profile_ui(file):
            return after(upload_profile(file))

        load_btn.click(load_model_ui, [model_box, prof_box], refresh_out, api_name="load_model",
                       show_progress_on=[model_status], **HEAVY)
        prof_evt = prof_btn.click(run_profile_ui, [p_groups, p_bits, p_calib, p_mode, p_layers], refresh_out,
                                  api_name="run_profile", show_progress_on=[model_status], **HEAVY)
        cancel_btn.click(cancel_profile, None, model_status, api_name="cancel_profile", cancels=[prof_evt],
                         queue=False)
        prof_up.upload(upload_profile_ui, prof_up, refresh_out, api_name="upload_profile",
                       show_progress_on=[model_status], **HEAVY)
        alloc_up.upload(upload_allocation, alloc_up, [heatmap, trade_plot, summary], api_name="upload_allocation")
        prof_dl_btn.click(export_profile, None, dl_file, api_name="export_profile")
        alloc_dl_btn.click(export_allocation, None, dl_file, api_name="export_allocation")

    demo.queue(max_size=64)
    return demo


def launch(demo: gr.Blocks, **kwargs):
    """demo.launch with the app's defaults: 127.0.0.1, upload size limit, its CSS, no share."""
    kwargs.setdefault("server_name", "127.0.0.1")
    kwargs.setdefault("max_file_size", MAX_FILE_SIZE)
    kwargs.setdefault("share", False)
    kwargs.setdefault("css", CSS)
    kwargs.setdefault("footer_links", ["api", "gradio"])
    return demo.launch(**kwargs)


def main(argv=None):
    ap = argparse.ArgumentParser(description="dadq analysis app (Gradio).")
    ap.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=7860)
    ap.add_argument("--model", default="default", help="'default', a local diffusers folder, or a hub id")
    ap.add_argument("--profile", default=None, help="profile .safetensors (default: the one beside the model)")
    ap.add_argument("--share", action="store_true", help="create a public gradio.live link (off by default)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        demo = build_demo(args.model, args.profile)
    except ValueError as e:
        print(f"dadq app: {e}", file=sys.stderr)
        return 2
    print(f"dadq app: built in {time.perf_counter() - t0:.1f} s; serving http://{args.host}:{args.port}", flush=True)
    launch(demo, server_name=args.host, server_port=args.port, share=args.share)
    return 0


if __name__ == "__main__":
    sys.exit(main())
