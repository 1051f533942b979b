"""What the widgets show for the current state: texts, tables, figures and control values. Figures
come from ``dadq.plots``, numbers from ``dadq``; this module only arranges them."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

import dadq
from dadq import plots
from dadq.allocate import GROUP_WEIGHTED_NOTE, lambda_range, uniform_shortfall
from dadq.profile import most_group_dependent_layer, most_sensitive_layer
from dadq.features import IMAGE_SHAPE as FID_IMAGE_SHAPE
from dadq.quant import grid_of
from dadq.metrics import FID_LABEL
from dadq.trajectory import GAIN_SETTINGS

from .state import STATE, default_budget, has_note

MEAN_GROUP = -1
FID_COLUMNS = ["run", "model", "allocation", "rounding", "sampler", "n", "seed", "feature network", "reference",
               "FID"]
PAIR_COLUMNS = ["pair", "PSNR (dB)", "SSIM"]
BREAKDOWN_COLUMNS = ["quantizer", "W/A", "D (mean over groups)", "% of D", "bits per group g0…", "% of group's D, g0…"]
AB_COLUMNS = ["pair", "A PSNR (dB)", "A SSIM", "B PSNR (dB)", "B SSIM"]


def table(headers_rows) -> pd.DataFrame:
    headers, rows = headers_rows
    return pd.DataFrame(rows, columns=headers)


def fid_table() -> pd.DataFrame:
    return pd.DataFrame(STATE.fid_rows, columns=FID_COLUMNS)


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
            f"{settings_text(p.settings())} · calib {meta.get('calib_per_group', '?')}/group"
            f"{'' if p.held_out_x is None else f' · curves held out (seed {p.curve_inputs()[2]})'} · {src}")
    if STATE.pending is not None:
        text += (f"\n\n⚠ Model `{STATE.pending[1]}` is loaded but has no profile yet: run one (Model tab) or upload "
                 "one. The views still show the model above.")
    return text


def settings_text(settings: dict) -> str:
    """A profile's (or allocation's) rounding, bias correction, weight grid and distortion metric in words
    (``Profile.settings`` / ``Allocation.settings``)."""
    bias = "on" if settings.get("bias_correction") else "off"
    return (f"rounding {settings.get('rounding', 'rtn')} · bias correction {bias} · "
            f"weight grid {grid_of(settings)} · metric {settings.get('metric', '?')}")


def fid_note() -> str:
    if STATE.model is None:
        return ""
    shape = tuple(STATE.model.sample_shape)
    if shape != tuple(FID_IMAGE_SHAPE):
        return (f"**{FID_LABEL}** needs {'×'.join(map(str, FID_IMAGE_SHAPE))} images; this model makes "
                f"{'×'.join(map(str, shape))}, so FID is not available here. The app does not resize: scores of "
                "resized images against MNIST statistics would not mean anything.")
    return (f"**{FID_LABEL}**: FP and quantized samples come from the same sampler, steps and seeds; compare "
            "scores only at equal sample counts (small-n FID is biased upwards). Every run is kept below.")


def sampler_name(sampler: str, steps: int) -> str:
    return f"DDIM-{steps}" if sampler == "ddim" else f"DDPM-{STATE.model.num_timesteps}"


# --- allocation -------------------------------------------------------------------------------------

def budget_range(profile) -> tuple[float, float]:
    """Slider range in average bits: one bit below the smallest width (so the infeasible region and
    its message can be reached) up to the widest profiled width."""
    return max(0.5, float(profile.bits.min()) - 1.0), float(profile.bits.max())


SCOPES = {"group": "every group ≤ budget (peak per step)", "mean": "mean over groups ≤ budget (trajectory average)"}
# the allocation's full-precision options as (label, value), and the dadq.allocate argument of each value
FULL_PRECISION = [("model input x_t at full precision, outside the budget (fp_input)", "input"),
                  ("full precision as the top point of every curve (fp_top)", "top")]
FULL_PRECISION_ARGS = {"input": "fp_input", "top": "fp_top"}


def full_precision_kwargs(values) -> dict:
    """The checkbox values -> dadq.allocate's {fp_input: bool, fp_top: bool}."""
    chosen = set(values or ())
    return {arg: v in chosen for v, arg in FULL_PRECISION_ARGS.items()}


def frontiers(alloc) -> dict:
    """The trade-off frontiers of ``alloc``'s target, one per budget scope, labelled by the rule they
    bound; the allocation's own scope first (drawn solid)."""
    order = [alloc.budget_scope] + [sc for sc in SCOPES if sc != alloc.budget_scope]
    options = full_precision_kwargs(full_precision_of(alloc))
    return {SCOPES[sc]: STATE.sweep(alloc.target, scope=sc, **options) for sc in order}


def full_precision_of(alloc) -> list[str]:
    """The FULL_PRECISION values an allocation was made with, read from the notes dadq.allocate writes."""
    return [v for v, arg in FULL_PRECISION_ARGS.items() if has_note(alloc, f"{arg}:")]


_REVISION = itertools.count()


def _revised(fig):
    """A new revision number in the layout: the slider's fast path redraws the heatmap and trade-off
    in place (``texts.redraw_js``), so gr.Plot's own value can be an older figure; with every figure
    distinct, a full figure sent later is never taken for 'unchanged' and skipped."""
    fig.spec["layout"]["datarevision"] = next(_REVISION)
    return fig


def heatmap_view():
    return _revised(plots.allocation_heatmap_spec(STATE.profile, STATE.alloc, order=STATE.heat_order,
                                                  find=STATE.heat_find, collapsed=STATE.heat_collapsed,
                                                  only_found=STATE.heat_only))


def tradeoff_view():
    a = STATE.alloc
    return _revised(plots.tradeoff_spec(STATE.profile, frontiers(a), a, a.target))


def summary_view() -> str:
    a = STATE.alloc
    text = plots.allocation_summary(STATE.profile, a, STATE.requested)
    text += (f"\n- Budget scope: **{a.budget_scope}** ({SCOPES.get(a.budget_scope, a.budget_scope)}); "
             f"from a profile with {settings_text(a.settings)}")
    power = float((STATE.request or {}).get("gain_power") or 0.0)
    if power > 0 and has_note(a, GROUP_WEIGHTED_NOTE):
        text += f"\n- Group weights: each group's D × trajectory gain^**{power:g}**; the gain: {STATE.gain_source}"
    why = uniform_shortfall(STATE.profile, a)
    return text + (f"\n\nWhy fewer bits: {why}." if why else "")


def allocation_views():
    """(heatmap, trade-off figure, summary markdown) of the displayed allocation."""
    return heatmap_view(), tradeoff_view(), summary_view()


def control_values() -> dict:
    """Values of the allocation controls that reproduce the displayed allocation: after a rejected
    input the controls show what the views show."""
    a, req = STATE.alloc, dict(STATE.request or {})
    if isinstance(a.budget, (tuple, list)):
        req.update(drive="budget", target="separate", w_budget=float(a.budget[0]), a_budget=float(a.budget[1]))
    elif a.lam is not None:
        req.update(drive="lambda", target=a.target, log_lam=round(math.log10(a.lam), 4))
    else:
        budget = STATE.requested if STATE.requested is not None else float(a.group_avg_bits.mean())
        req.update(drive="budget", target=a.target, budget=round(float(budget), 4))
    req.update(method=a.method, weight_mode=a.weight_mode, budget_scope=a.budget_scope,
               full_precision=full_precision_of(a))
    req.setdefault("gain_power", 0.0)  # an uploaded allocation: its notes say how its groups were weighted
    return req


def gain_text() -> str:
    """The trajectory gain behind the group weight power: where it comes from, and its values."""
    p = STATE.profile
    if STATE.gain is None:
        return (f"Trajectory gain: {STATE.gain_source}. Press *measure trajectory gain* ({p.num_groups + 1} "
                f"sampling runs of {GAIN_SETTINGS['n']} samples) to weight the groups by it.")
    values = ", ".join(f"{lab} {g:.3g}" for lab, g in zip(plots.group_labels(p), STATE.gain))
    return (f"Trajectory gain, {STATE.gain_source}: the final sample's MSE per unit eps MSE added at a group's "
            f"steps: {values}.")


def breakdown(top: int = 12) -> pd.DataFrame:
    """Where the predicted distortion of the displayed allocation goes (``Allocation.breakdown``):
    the quantizers (layer, W or A) with the largest share of the mean D, with their bits and share of
    each group's D. Only arranges the core's numbers into one row per quantizer."""
    frame = STATE.alloc.breakdown().sort_values("group", kind="stable")
    rows = []
    for (layer, kind), part in frame.groupby(["layer", "kind"], sort=False):
        rows.append([plots.layer_labels([layer])[0].split(" ", 1)[1], kind.upper(), float(part["D"].mean()),
                     round(100 * float(part["share_of_mean"].sum()), 1),
                     " ".join("FP" if b >= 32 else str(b) for b in part["bits"]),
                     " ".join(f"{100 * v:.0f}" for v in part["share"])])
    table = pd.DataFrame(rows, columns=BREAKDOWN_COLUMNS)
    table = table.sort_values("D (mean over groups)", ascending=False, kind="stable").head(top)
    table["D (mean over groups)"] = table["D (mean over groups)"].map(lambda v: float(f"{v:.3g}"))
    return table


# --- samples ---------------------------------------------------------------------------------------

def _rgb(u8: np.ndarray) -> np.ndarray:
    return np.repeat(u8[..., None], 3, axis=-1) if u8.ndim == 3 else u8


def pair_items(fp, q, psnr, ssim) -> list:
    """One gallery item per pair: FP | quantized | |FP − Q| side by side (the difference in a heat
    scale, white = the batch's largest), captioned with the pair's PSNR and SSIM."""
    fp8, q8 = _rgb(dadq.images.to_uint8(fp)), _rgb(dadq.images.to_uint8(q))
    diff = dadq.metrics.abs_difference(fp, q).mean(axis=1)  # [N, H, W] in [0, 1]
    top = float(diff.max()) or 1.0
    d = diff / top
    heat = np.stack([np.clip(3 * d, 0, 1), np.clip(3 * d - 1, 0, 1), np.clip(3 * d - 2, 0, 1)], axis=-1)
    heat8 = (heat * 255).round().astype(np.uint8)
    n, h = fp8.shape[:2]
    gap = np.full((h, 2, 3), 255, dtype=np.uint8)
    items = []
    for i in range(n):
        strip = np.concatenate([fp8[i], gap, q8[i], gap, heat8[i]], axis=1)
        ps = "∞" if psnr[i] == float("inf") else f"{psnr[i]:.1f}"
        items.append((strip, f"#{i}: PSNR {ps} dB, SSIM {ssim[i]:.3f}"))
    return items


def ab_items(fp, qa, qb, metrics) -> list:
    """One gallery item per pair: FP | A | B side by side, captioned with A's and B's SSIM."""
    imgs = [_rgb(dadq.images.to_uint8(x)) for x in (fp, qa, qb)]
    n, h = imgs[0].shape[:2]
    gap = np.full((h, 2, 3), 255, dtype=np.uint8)
    (_, sa), (_, sb) = metrics
    return [(np.concatenate([imgs[0][i], gap, imgs[1][i], gap, imgs[2][i]], axis=1),
             f"#{i}: SSIM A {sa[i]:.3f}, B {sb[i]:.3f}") for i in range(n)]


def ab_table(metrics) -> pd.DataFrame:
    fmt = lambda v: "inf" if v == float("inf") else round(float(v), 3)  # noqa: E731
    (pa, sa), (pb, sb) = metrics
    return pd.DataFrame([[i, fmt(pa[i]), round(float(sa[i]), 4), fmt(pb[i]), round(float(sb[i]), 4)]
                         for i in range(len(pa))], columns=AB_COLUMNS)


def pair_table(psnr, ssim) -> pd.DataFrame:
    fmt = lambda v: "inf" if v == float("inf") else round(float(v), 3)  # noqa: E731
    return pd.DataFrame([[i, fmt(psnr[i]), round(float(ssim[i]), 4)] for i in range(len(psnr))],
                        columns=PAIR_COLUMNS)


def conditioning_values() -> dict[str, dict]:
    """Props of the class-label and guidance controls: active only for a class-conditional model,
    the guidance at the model's own default scale."""
    m = STATE.model
    cond = m.conditioning == "class"
    k = m.num_classes if cond else None
    hint = (f"classes 0–{k - 1}" + (f", null class {m.null_class}" if m.null_class is not None else "")
            if cond else "this model is not class-conditional")
    return {"class_labels": dict(value="", interactive=cond, placeholder=hint),
            "guidance": dict(value=float(m.guidance_scale) if cond and m.guidance_scale is not None else 1.0,
                             interactive=cond and m.can_guide)}


def conditioning_text(labels, guidance) -> str:
    """The labels and guidance a sampling run used, for its info line ('' for an unconditional model)."""
    if labels is None:
        return ""
    shown = ", ".join(str(int(v)) for v in labels[:12]) + (", …" if len(labels) > 12 else "")
    return f" Class labels {shown}; guidance {'none' if guidance in (None, 1.0) else f'{guidance:g}'}."


# --- everything, for the first page and after a model/profile change ------------------------------

def view_values(sensitivity, activations) -> dict[str, dict]:
    """Props of every view component for the current (model, profile, allocation), keyed by the
    component's name in ``ui.layout``; ``sensitivity``/``activations`` are the handlers that draw
    those tabs."""
    p = STATE.profile
    bits = [int(b) for b in p.bits]
    groups = [("mean over groups", MEAN_GROUP)] + [(lab, g) for g, lab in enumerate(plots.group_labels(p))]
    layers = plots.layer_choices(p)
    s_layer, a_layer = most_sensitive_layer(p), most_group_dependent_layer(p)
    a_bits = 4 if 4 in bits else bits[len(bits) // 2]
    s_fig, s_df = sensitivity(MEAN_GROUP, "bits", "layers", s_layer, bits[0])
    a_fig, a_df = activations(a_layer, "overlay", a_bits, True)
    lo, hi = budget_range(p)
    b0 = default_budget(p)
    l_lo, l_hi, l_mid = lambda_range([STATE.sweep(t) for t in ("wa", "w", "a")])
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
        "weight_mode": dict(value="per-group"), "budget_scope": dict(value="group"), "full_precision": dict(value=[]),
        "gain_power": dict(value=0.0), "gain_md": dict(value=gain_text()),
        "budget": dict(minimum=lo, maximum=hi, value=b0, visible=True),
        "w_budget": dict(minimum=lo, maximum=hi, value=b0, visible=False),
        "a_budget": dict(minimum=lo, maximum=hi, value=b0, visible=False),
        "log_lam": dict(minimum=l_lo, maximum=l_hi, value=l_mid, visible=False),
        "heat_blocks": dict(choices=plots.layer_blocks(p.layer_names), value=list(STATE.heat_collapsed)),
        "heat_only": dict(value=STATE.heat_only),
        "heatmap": dict(value=h_fig), "trade_plot": dict(value=t_fig), "summary": dict(value=s_md),
        "add_plot": dict(value=plots.empty_figure("press 'measure additivity' to run the model")),
        "add_md": dict(value=""),
        "solver_df": dict(value=pd.DataFrame(columns=plots.solver_table([])[0])),
        # the sampler steps the model's card measured it at (a folder's dadq.json), else DDIM-50
        "steps": dict(maximum=STATE.model.num_timesteps, value=int(STATE.model.info.get("sampler_steps", 50))),
        **conditioning_values(),
        "fid_info": dict(value=fid_note()),
        "p_groups": dict(value=p.num_groups), "p_bits": dict(value=f"{bits[0]}-{bits[-1]}"),
    }
