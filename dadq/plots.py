"""Plotly figures and display tables for the analysis app (and notebooks).

Pure functions: a Profile / Allocation / arrays in, a ``plotly.graph_objects.Figure`` (or a
``(headers, rows)`` table) out. No gradio here. Every trace carries plain Python lists, not numpy
arrays, so the figure JSON holds readable numbers (plotly >= 6 would otherwise base64-encode them)
and a browser or a test can read ``graphDiv.data`` directly.

Units: distortion D is dadq's (1 - SSIM) + MSE of eps (unitless); sizes are bits unless a label
says kB/MB (1 kB = 1000 bytes, 1 MB = 10^6 bytes).
"""
from __future__ import annotations

import json
import math
import re

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative, sample_colorscale
from plotly.subplots import make_subplots

from .allocate import target_numel, uniform_points
from .bitwidths import FP_BITS, option_index
from .profile import group_curves, sensitivity_ranking
from .rounding import per_group_hessian

# Layers that deployment recipes (e.g. NVIDIA ModelOpt) keep in high precision: made easy to find.
KEY_LAYER_PATTERNS = ("conv_in", "conv_out", "time_embedding", "conv_shortcut")
KEY_MARK = "★"
TEMPLATE = "plotly_white"
LAYER_COLOURS = qualitative.Dark24 + qualitative.Light24


# --- names and colours -------------------------------------------------------------------------

def is_key_layer(name: str) -> bool:
    return any(p in name for p in KEY_LAYER_PATTERNS)


_ABBREV = [
    (r"down_blocks\.(\d+)", r"down\1"), (r"up_blocks\.(\d+)", r"up\1"), (r"mid_block", "mid"),
    (r"resnets\.(\d+)", r"res\1"), (r"attentions\.(\d+)", r"attn\1"), (r"downsamplers\.(\d+)", r"downsample\1"),
    (r"upsamplers\.(\d+)", r"upsample\1"), (r"time_embedding", "time_emb"), (r"to_out\.0", "to_out"),
    (r"transformer_blocks\.(\d+)", r"block\1"), (r"norm1\.emb\.timestep_embedder", "t_emb"),
]


def short_name(name: str) -> str:
    """A readable short form of a diffusers module path: down_blocks.1.resnets.0.conv1 -> down1.res0.conv1."""
    for pat, rep in _ABBREV:
        name = re.sub(pat, rep, name)
    return name


def layer_labels(names: list[str]) -> list[str]:
    """Row labels in network order: '07 down0.res0.conv1', key layers marked with ★ (unique)."""
    width = len(str(max(len(names) - 1, 0)))
    return [f"{i:0{width}d} {short_name(n)}{' ' + KEY_MARK if is_key_layer(n) else ''}" for i, n in enumerate(names)]


def layer_choices(profile) -> list[tuple[str, str]]:
    """(label, layer name) pairs for a dropdown, in network order."""
    return list(zip(layer_labels(profile.layer_names), profile.layer_names))


def group_labels(profile) -> list[str]:
    return [f"g{g}: {lab}" for g, lab in enumerate(profile.groups.labels())]


def group_colours(n: int) -> list[str]:
    """One colour per timestep group, ordered (viridis): low t dark, high t light."""
    if n == 1:
        return sample_colorscale("Viridis", [0.0])
    return sample_colorscale("Viridis", [0.9 * g / (n - 1) for g in range(n)])


def _rgba(colour: str, alpha: float) -> str:
    """'rgb(r, g, b)' or '#rrggbb' -> 'rgba(r, g, b, alpha)'."""
    if colour.startswith("#"):
        r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    else:
        r, g, b = (float(v) for v in re.findall(r"[\d.]+", colour)[:3])
    return f"rgba({r:.0f}, {g:.0f}, {b:.0f}, {alpha})"


def _layer_index(profile, layer) -> int:
    if isinstance(layer, (int, np.integer)):
        if not 0 <= int(layer) < profile.num_layers:
            raise ValueError(f"layer index {layer} is out of range 0..{profile.num_layers - 1}.")
        return int(layer)
    try:
        return profile.layer_names.index(layer)
    except ValueError:
        raise ValueError(f"unknown layer {layer!r}: this profile's layers are e.g. {profile.layer_names[:3]}; "
                         "pick one from the list.") from None


def _fmt_bits(bits: float) -> str:
    """A size in bits as a readable string (bits, kB, MB)."""
    b = bits / 8
    if b >= 1e6:
        return f"{b / 1e6:.3g} MB"
    if b >= 1e3:
        return f"{b / 1e3:.3g} kB"
    return f"{b:.3g} B"


def _positive(d: np.ndarray) -> np.ndarray:
    """Distortions for a log axis: non-positive values (exact zeros) move to a floor under the data."""
    d = np.asarray(d, dtype=np.float64)
    pos = d[d > 0]
    floor = pos.min() / 10 if pos.size else 1e-12
    return np.where(d > 0, d, floor)


def _lst(a) -> list:
    return np.asarray(a, dtype=np.float64).tolist()


# --- view 1: layer sensitivity ----------------------------------------------------------------

def rd_curves(profile, group: int | None = None, x: str = "bits", layers=None) -> go.Figure:
    """Per-layer RD curves, W and A side by side: D (log) against bits or size, one line per layer.

    group: a timestep group index, or None / -1 for the mean over groups. x: 'bits' or 'size'.
    layers: optional subset of layer names to draw (default all). Hover: layer, bits, D, size.
    """
    if x not in ("bits", "size"):
        raise ValueError(f"x={x!r}: choose 'bits' or 'size'.")
    names = profile.layer_names
    keep = range(len(names)) if layers is None else [_layer_index(profile, l) for l in layers]
    labels = layer_labels(names)
    bits = profile.bits.astype(int)
    gtitle = "mean over groups" if group is None or group < 0 else group_labels(profile)[group]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("Weights (W)", "Input activations (A)"))
    for col, kind in enumerate(("w", "a"), start=1):
        d = _positive(group_curves(profile, kind, group))
        sizes = profile.sizes(kind)
        for k, li in enumerate(keep):
            xs = bits.tolist() if x == "bits" else (sizes[li] / 8e3).tolist()
            custom = [[labels[li], int(b), _fmt_bits(sizes[li, m])] for m, b in enumerate(bits)]
            fig.add_trace(go.Scatter(
                x=xs, y=_lst(d[li]), mode="lines+markers", name=labels[li], legendgroup=names[li],
                showlegend=col == 1, line=dict(color=LAYER_COLOURS[li % len(LAYER_COLOURS)], width=1.5),
                marker=dict(size=4), customdata=custom,
                hovertemplate=(f"<b>%{{customdata[0]}}</b> ({kind.upper()})<br>bits %{{customdata[1]}}"
                               "<br>D %{y:.3g}<br>size %{customdata[2]}<extra></extra>"),
            ), row=1, col=col)
    xtitle = "bits" if x == "bits" else "size (kB; W: the weights, A: one sample's input)"
    # sizes span orders of magnitude (a 1x1 conv to a wide attention projection): log axis for size
    fig.update_xaxes(title_text=xtitle, dtick=1 if x == "bits" else None, type="linear" if x == "bits" else "log")
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_yaxes(title_text="distortion D = (1 − SSIM) + MSE of ε", row=1, col=1)
    fig.update_layout(template=TEMPLATE, height=560, margin=dict(l=60, r=10, t=60, b=50),
                      title=dict(text=f"Per-layer RD curves, {gtitle} (click a legend entry to hide a layer)",
                                 font=dict(size=14)),
                      legend=dict(font=dict(size=9), itemsizing="constant"), hovermode="closest")
    return fig


def rd_curves_groups(profile, layer, x: str = "bits") -> go.Figure:
    """One layer's RD curves across all timestep groups, W and A side by side."""
    li = _layer_index(profile, layer)
    label = layer_labels(profile.layer_names)[li]
    bits = profile.bits.astype(int)
    glabels = group_labels(profile)
    colours = group_colours(profile.num_groups)
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("Weights (W)", "Input activations (A)"))
    for col, kind in enumerate(("w", "a"), start=1):
        d = _positive(profile.curves(kind)[:, li])
        sizes = profile.sizes(kind)[li]
        xs = bits.tolist() if x == "bits" else (sizes / 8e3).tolist()
        for g in range(profile.num_groups):
            custom = [[glabels[g], int(b), _fmt_bits(sizes[m])] for m, b in enumerate(bits)]
            fig.add_trace(go.Scatter(
                x=xs, y=_lst(d[g]), mode="lines+markers", name=glabels[g], legendgroup=f"g{g}",
                showlegend=col == 1, line=dict(color=colours[g]), customdata=custom,
                hovertemplate=(f"<b>{label}</b> ({kind.upper()})<br>%{{customdata[0]}}<br>bits %{{customdata[1]}}"
                               "<br>D %{y:.3g}<br>size %{customdata[2]}<extra></extra>"),
            ), row=1, col=col)
    fig.update_xaxes(title_text="bits" if x == "bits" else "size (kB)", dtick=1 if x == "bits" else None,
                     type="linear" if x == "bits" else "log")
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_yaxes(title_text="distortion D", row=1, col=1)
    fig.update_layout(template=TEMPLATE, height=520, margin=dict(l=60, r=10, t=60, b=50),
                      title=dict(text=f"{label}: RD curves in every timestep group", font=dict(size=14)),
                      hovermode="closest")
    return fig


def sensitivity_table(profile, group: int | None = None, bits: int | None = None):
    """Layers ranked by D_W + D_A at ``bits`` (default: the lowest profiled width), most sensitive
    first, for one group or the mean over groups. Returns (headers, rows)."""
    b, order, dw, da = sensitivity_ranking(profile, group, bits)
    labels = layer_labels(profile.layer_names)
    headers = ["rank", "layer", "type", f"D_W @{b}b", f"D_A @{b}b", "D_W + D_A", "weights", "input elems"]
    rows = [[r + 1, labels[i], profile.layer_types[i], float(f"{dw[i]:.4g}"), float(f"{da[i]:.4g}"),
             float(f"{dw[i] + da[i]:.4g}"), int(profile.w_numel[i]), int(profile.a_numel[i])]
            for r, i in enumerate(order)]
    return headers, rows


# --- view 2: activation distributions ---------------------------------------------------------

def activation_hist(profile, layer, style: str = "overlay", bits: int | None = None, log_y: bool = True) -> go.Figure:
    """A layer's input distribution in every timestep group over one shared value axis.

    style: 'overlay' (densities on top of each other) or 'ridge' (one row per group, each scaled
    to its own peak). Each group's histogram covers its own [min, max] (64 bins). bits: also mark
    the clipped quantization range [lo, hi] each group uses at that width (dashed).
    """
    if style not in ("overlay", "ridge"):
        raise ValueError(f"style={style!r}: choose 'overlay' or 'ridge'.")
    li = _layer_index(profile, layer)
    m = None if bits is None else option_index(profile.bits, bits, fp_ok=False)
    G = profile.num_groups
    glabels = group_labels(profile)
    colours = group_colours(G)
    label = layer_labels(profile.layer_names)[li]
    # a per-token (or per-sample) input has no fixed range to mark: each token's own min/max, shrunk per group
    token = profile.layer_names[li] in profile.token_layers()
    unit = token_unit(profile)
    fig = go.Figure()
    nb = profile.act_hist.shape[-1]
    for g in range(G):
        lo, hi = (float(v) for v in profile.act_minmax[g, li])
        edges = np.linspace(lo, hi, nb + 1)
        centres = 0.5 * (edges[:-1] + edges[1:])
        dens = profile.act_hist[g, li].astype(np.float64)
        hover = f"{glabels[g]}<br>x %{{x:.3g}}<br>density %{{customdata:.3g}}<extra></extra>"
        if style == "overlay":
            y = np.where(dens > 0, dens, np.nan) if log_y else dens
            fig.add_trace(go.Scatter(x=_lst(centres), y=[None if not np.isfinite(v) else v for v in y.tolist()],
                                     customdata=_lst(dens), mode="lines", line=dict(color=colours[g], width=1.5,
                                     shape="hvh"), fill=None if log_y else "tozeroy",
                                     fillcolor=_rgba(colours[g], 0.12), name=glabels[g], legendgroup=f"g{g}",
                                     hovertemplate=hover, connectgaps=False))
        else:
            peak = dens.max() if dens.max() > 0 else 1.0
            h = np.log1p(dens / peak * 50) / np.log1p(50) if log_y else dens / peak
            base = float(g)
            xs = np.concatenate([[edges[0]], centres, [edges[-1]]])
            ys = np.concatenate([[0.0], h * 0.9, [0.0]]) + base
            fig.add_trace(go.Scatter(x=_lst(xs), y=_lst(ys), customdata=_lst(np.concatenate([[0], dens, [0]])),
                                     mode="lines", line=dict(color=colours[g], width=1.2, shape="hvh"),
                                     fill="toself", fillcolor=_rgba(colours[g], 0.35), name=glabels[g],
                                     legendgroup=f"g{g}", hovertemplate=hover))
        if m is not None and not token:
            clo, chi = (float(v) for v in profile.act_range[g, li, m])
            y0, y1 = (g, g + 0.95) if style == "ridge" else (0, 1)
            yref = "y" if style == "ridge" else "paper"
            for xv in (clo, chi):
                fig.add_shape(type="line", x0=xv, x1=xv, y0=y0, y1=y1, yref=yref,
                              line=dict(color=colours[g], width=1, dash="dash"))
    clip_note = "" if m is None else (
        f"; per-{unit} {int(profile.bits[m])}-bit ranges (each {unit}'s min/max, shrunk per group)" if token
        else f"; dashed: clipped {int(profile.bits[m])}-bit range per group")
    fig.update_xaxes(title_text="input activation value (shared axis)")
    if style == "overlay":
        # log: one label per decade (plotly's minor 2 and 5 labels crowd a short axis)
        fig.update_yaxes(type="log" if log_y else "linear", exponentformat="power", title_text="density",
                         **(dict(dtick=1) if log_y else {}))
    else:
        fig.update_yaxes(tickmode="array", tickvals=list(range(G)), ticktext=glabels,
                         title_text="" if not log_y else "density (log-compressed, per-group peak = 1)")
    fig.update_layout(template=TEMPLATE, height=max(420, 60 + 42 * G) if style == "ridge" else 460,
                      margin=dict(l=60, r=10, t=60, b=50), hovermode="closest",
                      showlegend=style == "overlay",
                      title=dict(text=f"{label}: input distribution per timestep group{clip_note}", font=dict(size=14)))
    return fig


def token_unit(profile) -> str:
    """What one dynamic range covers in ``profile``: 'sample' (act_granularity="sample") or 'token'."""
    return "sample" if profile.settings().get("act_granularity") == "sample" else "token"


def activation_table(profile, layer, bits: int | None = None):
    """Each group's calibrated range of a layer's input: (headers, rows) with min, max, and the
    clipped range (lo, hi) the quantizer uses at ``bits`` (default: the lowest profiled width). A per-token
    input (``Profile.token_layers``) has no fixed range: its rows give the ratio each token's own min/max is
    shrunk by, and the range and step columns read 'per token'."""
    li = _layer_index(profile, layer)
    m = option_index(profile.bits, bits if bits is not None else int(profile.bits[0]), fp_ok=False)
    b = int(profile.bits[m])
    glabels = group_labels(profile)
    if profile.layer_names[li] in profile.token_layers():
        unit = token_unit(profile)
        per = f"per {unit}"
        headers = ["group", "min", "max", f"clip lo @{b}b", f"clip hi @{b}b", f"clip / each {unit}'s width", f"step @{b}b"]
        return headers, [[glabels[g], *(float(f"{float(v):.4g}") for v in profile.act_minmax[g, li]), per,
                          per, float(f"{float(profile.act_range[g, li, m][0]):.3f}"), per]
                         for g in range(profile.num_groups)]
    headers = ["group", "min", "max", f"clip lo @{b}b", f"clip hi @{b}b", "clip / full width", f"step @{b}b"]
    rows = []
    for g in range(profile.num_groups):
        lo, hi = (float(v) for v in profile.act_minmax[g, li])
        clo, chi = (float(v) for v in profile.act_range[g, li, m])
        ratio = (chi - clo) / max(hi - lo, 1e-12)
        step = (chi - clo) / (2 ** b - 1)
        rows.append([glabels[g], float(f"{lo:.4g}"), float(f"{hi:.4g}"), float(f"{clo:.4g}"), float(f"{chi:.4g}"),
                     float(f"{ratio:.3f}"), float(f"{step:.3g}")])
    return headers, rows


# --- views 3 and 4: allocation ------------------------------------------------------------------

def _bits_display(bits: np.ndarray, pbits: np.ndarray) -> np.ndarray:
    """Bits for the colour scale: full precision drawn one step above the top profiled width."""
    top = int(pbits.max())
    return np.where(bits >= FP_BITS, top + 1, bits)


def _target_title(alloc) -> str:
    """What an allocation's budget bounds, for titles: separate W and A budgets are not 'target wa'."""
    if isinstance(alloc.budget, (tuple, list)):
        return f"separate budgets W {alloc.budget[0]:.3g} + A {alloc.budget[1]:.3g} avg bits"
    return {"wa": "joint W+A budget", "w": "weights only", "a": "activations only"}.get(alloc.target,
                                                                                      f"target {alloc.target}")


class FigureJSON:
    """A figure held as its plotly JSON spec, for views redrawn on every slider move. gr.Plot and
    plotly.io take it as they take a go.Figure (``to_json``); building it skips plotly's Python-side
    validation and copies, which cost 100-300 ms per draw of the default model's 1,280-cell heatmap.
    ``figure()`` gives the validated go.Figure."""

    def __init__(self, spec: dict):
        self.spec = spec

    def to_json(self) -> str:
        return json.dumps(self.spec, separators=(",", ":"))

    def to_dict(self) -> dict:
        return self.spec

    def figure(self) -> go.Figure:
        return go.Figure(self.spec)


_HEATMAP_LAYOUTS: dict = {}


def _heatmap_layout(profile, has_fp: bool) -> dict:
    """The heatmap's layout (axes, colour bar), validated once per profile and reused."""
    key = (profile.fingerprint, tuple(profile.layer_names), profile.num_groups, tuple(profile.bits.tolist()), has_fp)
    if key not in _HEATMAP_LAYOUTS:
        pbits = profile.bits.astype(int)
        zmin, zmax = int(pbits.min()), int(pbits.max()) + (1 if has_fp else 0)
        fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.02,
                            subplot_titles=("Weight bits (W)", "Activation bits (A)"))
        ticks = list(range(zmin, zmax + 1))
        ticktext = [str(t) for t in ticks[:-1]] + (["FP"] if has_fp else [str(ticks[-1])])
        fig.update_layout(
            template=TEMPLATE, height=max(420, 15 * profile.num_layers + 140), margin=dict(l=10, r=10, t=60, b=40),
            coloraxis=dict(colorscale="Viridis", cmin=zmin - 0.5, cmax=zmax + 0.5,
                           colorbar=dict(title="bits", tickvals=ticks, ticktext=ticktext, len=0.5, y=0.75)))
        fig.update_yaxes(autorange="reversed", tickfont=dict(size=9), row=1, col=1)
        fig.update_xaxes(side="bottom", tickfont=dict(size=10))
        _HEATMAP_LAYOUTS.clear()  # one profile at a time
        _HEATMAP_LAYOUTS[key] = json.loads(fig.layout.to_json() if hasattr(fig.layout, "to_json")
                                           else json.dumps(fig.layout.to_plotly_json()))
    return _HEATMAP_LAYOUTS[key]


HEATMAP_ORDERS = ("network", "sensitivity")
FIND_MARK = "▶ "


def heatmap_rows(profile, order: str = "network") -> np.ndarray:
    """Row order of the allocation heatmap: network order, or most sensitive first
    (``dadq.profile.sensitivity_ranking``: D_W + D_A at the lowest width, mean over groups)."""
    if order not in HEATMAP_ORDERS:
        raise ValueError(f"heatmap order {order!r}: choose one of {HEATMAP_ORDERS}.")
    return np.arange(profile.num_layers) if order == "network" else sensitivity_ranking(profile)[1]


def find_layers(names, query: str | None) -> list[int]:
    """Indices of the layers whose name contains ``query`` (case-insensitive; empty: none)."""
    q = (query or "").strip().lower()
    return [i for i, n in enumerate(names) if q and q in n.lower()]


def layer_block(name: str) -> str:
    """The block a layer belongs to, for grouping heatmap rows: the module path up to its first index
    (down_blocks.1.resnets.0.conv1 -> down_blocks.1, transformer_blocks.3.attn1.to_q ->
    transformer_blocks.3), or the top-level module (conv_in, time_embedding.linear_1 -> time_embedding)."""
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 and parts[1].isdigit() else parts[0]


def layer_blocks(names) -> list[str]:
    """The distinct blocks of ``names`` in network order (``layer_block``)."""
    return list(dict.fromkeys(layer_block(n) for n in names))


BLOCK_MARK = "▸ "


def heatmap_row_spec(profile, order: str = "network", find: str | None = None, collapsed=(),
                     only_found: bool = False) -> list[tuple[str, list[int]]]:
    """The heatmap's rows as (label, layer indices): one row per layer, except the layers of a
    ``collapsed`` block, which share one row (its label ``BLOCK_MARK`` + block + layer count) placed
    where the block's first layer in ``order`` would be. Layers whose name contains ``find`` are marked
    with ``FIND_MARK`` (a collapsed block holding one is marked too); ``only_found`` keeps only those."""
    found = set(find_layers(profile.layer_names, find))
    labels = layer_labels(profile.layer_names)
    collapsed = set(collapsed or ())
    blocks = [layer_block(n) for n in profile.layer_names]
    members: dict[str, list[int]] = {}
    for i, b in enumerate(blocks):
        members.setdefault(b, []).append(i)
    rows, placed = [], set()
    for l in heatmap_rows(profile, order):
        l = int(l)
        if only_found and l not in found:
            continue
        b = blocks[l]
        if b not in collapsed:
            rows.append(((FIND_MARK if l in found else "") + labels[l], [l]))
        elif b not in placed:
            placed.add(b)
            idx = [i for i in members[b] if not only_found or i in found]
            mark = FIND_MARK if found.intersection(idx) else ""
            rows.append((f"{mark}{BLOCK_MARK}{b} ({len(idx)} layer{'' if len(idx) == 1 else 's'})", idx))
    return rows


def allocation_heatmap_spec(profile, alloc, order: str = "network", find: str | None = None, collapsed=(),
                            only_found: bool = False) -> FigureJSON:
    """Bits per layer (rows: network order, or most sensitive first with ``order='sensitivity'``) and
    timestep group (columns), W and A side by side. Colour is bits (FP above the top width); hover
    shows the bits, D at that choice, size, and the layer's mean bits over groups; each column label
    carries the group's mean bits over layers. Rows whose name contains ``find`` are marked with
    ``FIND_MARK``; ``only_found`` drops the others. The layers of a ``collapsed`` block (``layer_block``)
    share one row: its mean bits per group, with the summed D and size in the hover (large models stay
    readable). No per-cell text: the colour says the bits, and 1,280 labelled cells were slow to redraw."""
    spec_rows = heatmap_row_spec(profile, order, find, collapsed, only_found)
    labels = [label for label, _ in spec_rows]
    pbits = profile.bits.astype(int)
    has_fp = bool((alloc.w_bits >= FP_BITS).any() or (alloc.a_bits >= FP_BITS).any())
    traces = []
    for col, kind in enumerate(("w", "a"), start=1):
        bits = (alloc.w_bits if kind == "w" else alloc.a_bits).astype(int)  # [G, L]
        d = alloc.d_w if kind == "w" else alloc.d_a
        numel = profile.w_numel if kind == "w" else profile.a_numel
        shown = np.minimum(bits, pbits.max() + 1)  # FP counted as one above the top width in the means
        layer_mean, group_mean = shown.mean(0), shown.mean(1)
        disp = _bits_display(bits, pbits)
        z, custom = [], []
        for _, idx in spec_rows:
            if len(idx) == 1:
                l = idx[0]
                z.append(disp[:, l].tolist())
                custom.append([["FP" if bits[g, l] >= FP_BITS else str(bits[g, l]), float(f"{d[g, l]:.3g}"),
                                _fmt_bits(numel[l] * bits[g, l]), round(float(layer_mean[l]), 2)]
                               for g in range(bits.shape[0])])
            else:  # a collapsed block: element-weighted mean bits, summed D and size
                w8 = numel[idx].astype(float)
                mean_g = (disp[:, idx] * w8).sum(1) / max(w8.sum(), 1.0)
                z.append([round(float(v), 2) for v in mean_g])
                custom.append([[f"{mean_g[g]:.2f} (block mean)", float(f"{d[g, idx].sum():.3g}"),
                                _fmt_bits(float((numel[idx] * bits[g, idx]).sum())),
                                round(float((shown[:, idx] * w8).sum() / max(w8.sum() * bits.shape[0], 1.0)), 2)]
                               for g in range(bits.shape[0])])
        traces.append(dict(
            type="heatmap", z=z, y=labels, customdata=custom,
            x=[f"g{g} ({group_mean[g]:.2f})" for g in range(profile.num_groups)],
            coloraxis="coloraxis", xgap=1, ygap=1, name="W" if kind == "w" else "A",
            xaxis="x" if col == 1 else f"x{col}", yaxis="y" if col == 1 else f"y{col}",
            hovertemplate=(f"<b>%{{y}}</b> ({kind.upper()})<br>%{{x}}<br>bits %{{customdata[0]}}"
                           "<br>D %{customdata[1]:.3g}<br>size %{customdata[2]}"
                           "<br>layer mean %{customdata[3]} bits<extra></extra>"),
        ))
    layout = dict(_heatmap_layout(profile, has_fp))
    layout["height"] = max(420, 15 * len(labels) + 140)  # the rows on display (blocks collapse, filters drop)
    how = "most sensitive first" if order == "sensitivity" else "network order"
    blocks = f"; {BLOCK_MARK}= block (mean bits)" if collapsed else ""
    layout["title"] = dict(text=f"Bit allocation ({alloc.method}, {_target_title(alloc)}, {alloc.weight_mode} "
                                f"weights)<br>rows {how}; columns: group (mean bits); {KEY_MARK} = layers often "
                                f"kept in high precision{blocks}", font=dict(size=13))
    return FigureJSON({"data": traces, "layout": layout})


def allocation_diff_heatmap(profile, a, b) -> FigureJSON:
    """B − A bits per layer (rows) and group (columns), W and A side by side: red where B spends more
    bits, blue where fewer (full precision counted as the top width + 1)."""
    labels = layer_labels(profile.layer_names)
    glabels = [f"g{g}" for g in range(profile.num_groups)]
    pbits = profile.bits.astype(int)
    diffs = {k: (_bits_display(getattr(b, f"{k}_bits").astype(int), pbits)
                 - _bits_display(getattr(a, f"{k}_bits").astype(int), pbits)).T for k in ("w", "a")}
    top = max(1, max(int(np.abs(d).max()) for d in diffs.values()))
    traces = [dict(type="heatmap", z=diffs[k].tolist(), x=glabels, y=labels, coloraxis="coloraxis", xgap=1, ygap=1,
                   name=k.upper(), xaxis="x" if col == 1 else "x2", yaxis="y" if col == 1 else "y2",
                   hovertemplate=f"<b>%{{y}}</b> ({k.upper()})<br>%{{x}}<br>B − A %{{z:+d}} bits<extra></extra>")
              for col, k in enumerate(("w", "a"), start=1)]
    layout = dict(_heatmap_layout(profile, False))
    # explicit stops: plotly.js's "RdBu" runs blue -> red but plotly.py's red -> blue; red = B spends more
    layout["coloraxis"] = dict(colorscale=[[0, "#2166ac"], [0.5, "#f7f7f7"], [1, "#b2182b"]], cmin=-top - 0.5,
                               cmax=top + 0.5,
                               colorbar=dict(title="B − A bits", len=0.5, y=0.75))
    layout["title"] = dict(text=f"B − A bits: B {a_label(b)}; A {a_label(a)}", font=dict(size=13))
    return FigureJSON({"data": traces, "layout": layout})


def a_label(alloc) -> str:
    """An allocation in a few words, for titles: solver, average bits, scope."""
    return f"{alloc.method}, {float(np.mean(alloc.group_avg_bits)):.2f} avg bits, scope {alloc.budget_scope}"


def allocation_heatmap(profile, alloc) -> go.Figure:
    """``allocation_heatmap_spec`` as a go.Figure."""
    return allocation_heatmap_spec(profile, alloc).figure()


def thin_curve(xs, ys, max_points: int = 400):
    """At most ~max_points points of a curve with increasing xs, spread evenly in x (ends kept)."""
    xs, ys = np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64)
    if len(xs) <= max_points:
        return xs, ys
    idx = np.searchsorted(xs, np.linspace(xs[0], xs[-1], max_points)).clip(0, len(xs) - 1)
    idx = np.unique(np.concatenate([[0], idx, [len(xs) - 1]]))
    return xs[idx], ys[idx]


_TRADEOFF_LAYOUTS: dict = {}


def _tradeoff_layout(target: str) -> dict:
    """The trade-off figure's layout, validated once per target and reused."""
    if target not in _TRADEOFF_LAYOUTS:
        tname = {"wa": "W+A", "w": "weights", "a": "activations"}[target]
        fig = go.Figure()
        fig.update_xaxes(title_text=f"average bits per {tname} element (per denoising step, mean over groups)")
        fig.update_yaxes(type="log", exponentformat="power", dtick=1,  # a label per decade, not 2 and 5 too
                         title_text="predicted D (sum over quantizers, mean over groups)")
        fig.update_layout(template=TEMPLATE, height=420, margin=dict(l=60, r=10, t=50, b=50),
                          title=dict(text="Total RD trade-off", font=dict(size=14)), hovermode="closest",
                          legend=dict(x=0.99, xanchor="right", y=0.99))
        _TRADEOFF_LAYOUTS[target] = json.loads(fig.layout.to_json() if hasattr(fig.layout, "to_json")
                                               else json.dumps(fig.layout.to_plotly_json()))
    return _TRADEOFF_LAYOUTS[target]


def tradeoff_spec(profile, sweep, alloc=None, target: str = "wa", max_points: int = 400) -> FigureJSON:
    """The whole model's predicted distortion against size along its frontier(s), with the
    uniform-bits points and the current allocation's point (a star).

    sweep: (avg_bits [K], distortion [K]) from dadq.rd_sweep(profile, target), or a dict
    {label: (avg_bits, distortion)} of several frontiers (e.g. one per budget scope; the first is
    drawn solid, the others dashed); each drawn with at most ``max_points`` points (evenly spaced
    in size), which keeps the figure small.
    """
    frontiers = sweep if isinstance(sweep, dict) else {"λ sweep (Lagrangian hull)": sweep}
    numel = target_numel(profile, target)
    mb = lambda avg: avg * numel / 8e6  # noqa: E731  per-step size of the target in MB
    styles = [dict(color="#1f77b4", width=2), dict(color="#2ca02c", width=2, dash="dash"),
              dict(color="#9467bd", width=2, dash="dot")]
    traces = []
    for k, (name, curve) in enumerate(frontiers.items()):
        xs, ys = thin_curve(*curve, max_points=max_points)
        traces.append(dict(type="scatter", x=_lst(xs), y=_lst(_positive(ys)), mode="lines", name=name,
                           line=styles[k % len(styles)], customdata=_lst(mb(xs)),
                           hovertemplate="avg bits %{x:.3f}<br>%{customdata:.3g} MB per step<br>D %{y:.3g}"
                                         f"<extra>{name}</extra>"))
    ub, ux, uy = uniform_points(profile, target)
    traces.append(dict(type="scatter", x=_lst(ux), y=_lst(_positive(uy)), mode="markers+text", name="uniform bits",
                       text=[f"{b}b" for b in ub.tolist()], textposition="top center",
                       marker=dict(symbol="square", size=9, color="#7f7f7f"), customdata=_lst(mb(ux)),
                       hovertemplate="uniform %{text}<br>%{customdata:.3g} MB per step<br>D %{y:.3g}<extra></extra>"))
    if alloc is not None:
        ax = float(np.mean(alloc.group_avg_bits))
        ay = float(np.mean(alloc.predicted))
        traces.append(dict(type="scatter", x=[ax], y=_lst(_positive(np.array([ay]))), mode="markers",
                           name="current allocation", customdata=[mb(ax)],
                           marker=dict(symbol="star", size=16, color="#d62728", line=dict(width=1, color="black")),
                           hovertemplate=(f"current ({alloc.method}, {alloc.weight_mode})<br>avg bits %{{x:.3f}}"
                                          "<br>%{customdata:.3g} MB per step<br>D %{y:.3g}<extra></extra>")))
    return FigureJSON({"data": traces, "layout": dict(_tradeoff_layout(target))})


def tradeoff(profile, sweep, alloc=None, target: str = "wa", max_points: int = 400) -> go.Figure:
    """``tradeoff_spec`` as a go.Figure."""
    return tradeoff_spec(profile, sweep, alloc, target, max_points).figure()


def allocation_summary(profile, alloc, requested=None) -> str:
    """Markdown: what was solved, the sizes with their meanings, and the predicted distortion.
    requested: the budget the user asked for (average bits), to show the Lagrangian's unused gap."""
    s = alloc.sizes()
    tname = {"wa": "W+A (joint)", "w": "weights only (A stays FP)", "a": "activations only (W stays FP)"}[alloc.target]
    if isinstance(alloc.budget, (tuple, list)):
        tname = "W and A, separate budgets"
        asked = f"W {alloc.budget[0]:.3g} + A {alloc.budget[1]:.3g} avg bits"
    elif alloc.lam is not None:
        asked = f"λ = {alloc.lam:.3g} (distortion per average bit)"
    else:
        asked = f"{alloc.budget:.3g} avg bits"
    store = ("one weight copy shared by all groups" if alloc.weight_mode == "shared"
             else "per-group weights, a Hessian per group: every quantized group of a layer is a stored copy"
             if per_group_hessian(alloc.settings.get("rounding", "rtn"))
             else "per-group weights: every distinct bit width of a layer is a stored copy")
    lines = [
        f"**{alloc.method}** solver · target **{tname}** · asked **{asked}** · weights **{alloc.weight_mode}**",
        "",
        f"- **Weights stored: {s['stored_w_MB']:.4g} MB** vs FP32 {s['fp32_w_MB']:.4g} MB → "
        f"**{s['compression_x']:.2f}× compression** ({store})",
        f"- Per denoising step (mean over groups): weights read {s['step_w_MB']:.4g} MB (FP32 {s['fp32_w_MB']:.4g} MB); "
        f"activations of one sample {s['step_a_MB']:.4g} MB (FP32 {s['fp32_a_MB']:.4g} MB)",
        f"- Average bits per targeted element: **{s['avg_bits']:.3f}** (groups {np.min(alloc.group_avg_bits):.3f}–"
        f"{np.max(alloc.group_avg_bits):.3f})",
        f"- Predicted D (sum over quantizers, mean over groups): **{float(np.mean(alloc.predicted)):.4g}**",
    ]
    if requested is not None and alloc.method == "lagrangian" and alloc.lam is None and np.isscalar(requested):
        gap = float(requested) - s["avg_bits"]
        if gap > 1e-3:
            lines.append(f"\nThe Lagrangian reaches only hull points: it uses {s['avg_bits']:.3f} of the "
                         f"{float(requested):.3g} bits asked ({gap:.3f} unused). Pick **exact** to spend the rest.")
    for n in alloc.notes:
        lines.append(f"\nNote: {n}.")
    return "\n".join(lines)


def solver_table(results):
    """results: list of (method, Allocation | error str, seconds). Returns (headers, rows) with the
    gap of each method's predicted D to the exact solver's."""
    ok = {m: a for m, a, _ in results if not isinstance(a, str)}
    ref = float(np.mean(ok["exact"].predicted)) if "exact" in ok else None
    headers = ["method", "avg bits used", "predicted D", "vs exact", "time (ms)"]
    rows = []
    for m, a, sec in results:
        if isinstance(a, str):
            rows.append([m, "", "", a, round(sec * 1e3, 1)])
            continue
        d = float(np.mean(a.predicted))
        gap = "" if ref is None else (f"{(d / ref - 1) * 100:+.2f} %" if ref > 0 else "")
        rows.append([m, round(float(np.mean(a.group_avg_bits)), 4), float(f"{d:.5g}"), gap, round(sec * 1e3, 1)])
    return headers, rows


def additivity_plot(result: dict, labels: list[str]) -> go.Figure:
    """Measured distortion of the whole allocation against the predicted sum, per group."""
    pred, meas = np.asarray(result["predicted"], float), np.asarray(result["measured"], float)
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=_lst(pred), name="predicted (sum of per-quantizer D)",
                         marker_color="#1f77b4"))
    fig.add_trace(go.Bar(x=labels, y=_lst(meas), name="measured (all quantizers at once)",
                         marker_color="#ff7f0e", customdata=_lst(result["ratio"]),
                         hovertemplate="%{x}<br>measured %{y:.3g}<br>measured / predicted %{customdata:.2f}"
                                       "<extra></extra>"))
    fmt = lambda c: "n/a" if c is None or not math.isfinite(c) else f"{c:.3f}"  # noqa: E731
    corr, log_corr = result.get("correlation", float("nan")), result.get("log_correlation")
    logs = "" if log_corr is None else f", on log10: {fmt(log_corr)}"
    # log axis: a linear one lets the largest group (t near 0) hide the other nine
    fig.update_yaxes(title_text="distortion D (log)", type="log", exponentformat="power")
    fig.update_layout(template=TEMPLATE, height=360, barmode="group", margin=dict(l=60, r=10, t=50, b=50),
                      title=dict(text=f"Additivity: measured vs predicted (correlation {fmt(corr)}{logs})",
                                 font=dict(size=14)),
                      legend=dict(orientation="h", y=-0.2))
    return fig


def empty_figure(message: str) -> go.Figure:
    """A blank figure carrying a message (e.g. 'press the button')."""
    fig = go.Figure()
    fig.add_annotation(text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font=dict(size=14))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(template=TEMPLATE, height=260, margin=dict(l=10, r=10, t=10, b=10))
    return fig


# --- export: figures as SVG / PNG at publication size, drawn by the local chromium -------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
PUBLICATION_SIZE = (1200, 800)  # px; the PNG is drawn at scale 2 (2400 x 1600)
IMAGE_FORMATS = ("svg", "png")


def _spec(fig) -> dict:
    if isinstance(fig, FigureJSON):
        return fig.spec
    return json.loads(fig.to_json()) if hasattr(fig, "to_json") else dict(fig)


def render_images(figs: list, formats=IMAGE_FORMATS, width: int | None = None, height: int | None = None,
                  scale: float = 2.0) -> list[dict]:
    """Every figure (go.Figure, FigureJSON or a plotly dict) as {format: bytes}, drawn by plotly.js's
    own toImage in Debian's chromium through playwright (kaleido is not needed). plotly.js is inlined:
    nothing is fetched. ``width``/``height``: the size in px (default: the figure's, else
    PUBLICATION_SIZE); ``scale`` multiplies the PNG's pixels only."""
    import base64
    import urllib.parse

    from playwright.sync_api import sync_playwright
    from plotly.offline import get_plotlyjs

    for f in formats:
        if f not in IMAGE_FORMATS:
            raise ValueError(f"image format {f!r}: choose from {IMAGE_FORMATS}.")
    html = (f"<html><head><meta charset='utf-8'><script>{get_plotlyjs()}</script></head>"
            "<body><div id='g'></div></body></html>")
    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_content(html, wait_until="load")
            for fig in figs:
                spec = _spec(fig)
                lay = spec.get("layout", {})
                w = int(width or lay.get("width") or PUBLICATION_SIZE[0])
                h = int(height or lay.get("height") or PUBLICATION_SIZE[1])
                images = {}
                for f in formats:
                    url = page.evaluate(
                        "([s, f, w, h, k]) => Plotly.toImage({data: s.data || [], layout: s.layout || {}}, "
                        "{format: f, width: w, height: h, scale: f === 'png' ? k : 1})", [spec, f, w, h, scale])
                    head, data = url.split(",", 1)
                    images[f] = base64.b64decode(data) if ";base64" in head else urllib.parse.unquote(data).encode()
                out.append(images)
        finally:
            browser.close()
    return out


def render_png(fig, width: int, height: int) -> bytes:
    """PNG bytes of one figure at ``width`` x ``height`` px (``render_images``, scale 1)."""
    return render_images([fig], ("png",), width, height, scale=1.0)[0]["png"]


def save_images(figs: dict, folder, formats=IMAGE_FORMATS, width: int | None = None,
                height: int | None = None) -> list:
    """Write each figure of {name: figure} as ``folder/name.svg`` and ``.png`` (``render_images``);
    returns the paths written."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, images in zip(figs, render_images(list(figs.values()), formats, width, height)):
        for f, data in images.items():
            path = folder / f"{name}.{f}"
            path.write_bytes(data)
            paths.append(path)
    return paths


def quality_sweep_plot(frame) -> go.Figure:
    """``dadq.sweep.quality_vs_bits``'s table: mean paired SSIM against average bits, one line per
    method (FID on a second axis where it was computed)."""
    has_fid = bool(frame["fid"].notna().any())
    fig = make_subplots(specs=[[{"secondary_y": has_fid}]])
    for i, (method, part) in enumerate(frame.dropna(subset=["avg_bits"]).groupby("method", sort=False)):
        colour = qualitative.Plotly[i % len(qualitative.Plotly)]
        fig.add_trace(go.Scatter(x=part["avg_bits"], y=part["ssim"], mode="lines+markers", name=f"{method} SSIM",
                                 line=dict(color=colour), customdata=part["budget"],
                                 hovertemplate="budget %{customdata}<br>%{x:.2f} avg bits<br>SSIM %{y:.4f}"
                                               "<extra>" + method + "</extra>"), secondary_y=False)
        if has_fid:
            fig.add_trace(go.Scatter(x=part["avg_bits"], y=part["fid"], mode="lines+markers", name=f"{method} FID",
                                     line=dict(color=colour, dash="dot")), secondary_y=True)
    fig.update_layout(template=TEMPLATE, height=420, title="Quality vs bits: paired SSIM against FP (same noise)")
    fig.update_xaxes(title_text="average bits used")
    fig.update_yaxes(title_text="mean SSIM vs FP", secondary_y=False)
    if has_fid:
        fig.update_yaxes(title_text="FID (lower is better)", secondary_y=True)
    return fig
