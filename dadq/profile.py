"""Rate-distortion profiling: ``profile(model, ...) -> Profile``.

For every timestep group g, quantizer (one layer's weights W, or its input activations A) and bit
width b, with everything else at full precision, D[g, l, b] is the output distortion
(1 - SSIM) + MSE of eps on the group's calibration inputs (``dadq.distortion``).

Modes:
- ``naive``: one full forward pass per (group, quantizer, bits) point; the reference.
- ``exact`` (default): the same numbers, faster. Quantizing layer l changes nothing computed
  before l, so the FP output of every module call is cached per group, and every call (a leaf
  or a whole block) that ends before l returns its cached output instead of computing.
- ``fast``: ``exact`` on three bit widths (the lowest, a third and two thirds of the way up:
  2, 4, 6 of 2-8). The others are filled from a noise model: each quantizer's noise power at
  the output of its own layer, measured at every width with one layer forward (``local_noise``),
  maps to D by a power law fitted to the measured neighbours (``fill_noise_model``).
"""
from __future__ import annotations

import datetime as _dt
import fnmatch
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .calibrate import HIST_BINS, calibration_conditioning, calibration_inputs, histogram, profile_conditioning
from .distortion import DEFAULT_METRIC, METRICS, SSIM_PARAMS, check_metric, distortion
from .bitwidths import option_index
from .groups import TimestepGroups
from .io import atomic_path
from .models import DiffusionModel, full_fp32
from .quant import (ACT_CLIP_GRID, ACT_GRANULARITIES, FP_BITS, TOKEN_PARAM_BITS, WEIGHT_CLIP_GRID, QuantizedUNet,
                    activation_range, check_weight_grid, concat_splits, grid_of, token_clip_ratio, token_layers)
from .rounding import ROUNDINGS, needs_calibration, uses_output_clip
from .rounding import describe as describe_rounding

FORMAT = "dadq-profile/1"
KINDS = ("w", "a")
MODES = ("exact", "naive", "fast")
# meta fields an allocation records and checks (Profile.settings), with the value of profiles made
# before the field existed
SETTINGS = {"distortion": "(1 - SSIM) + MSE on eps", "rounding": "rtn", "bias_correction": False,
            "metric": DEFAULT_METRIC, "split_concat": False}
# split_concat's default: one range per concatenated part lowered those layers' A-curves
# in 23 of 24 (layer, width) points on the default model (A-curve D summed over the 12 split layers:
# 4 bits 0.0557 -> 0.0349, 6 bits 0.0039 -> 0.0022; experiments/results/rounding_ablation_split.json)
SPLIT_CONCAT_DEFAULT = True


@dataclass
class Profile:
    """RD curves and activation statistics of one model.

    Shapes: G groups, L layers (execution order), M candidate bit widths, N calibration samples.
      d_w, d_a     float64 [G, L, M]  distortion of quantizing layer l's weights / input at bits[m]
      w_numel      int64 [L]          weight elements; weight size at b bits = w_numel * b bits
      a_numel      int64 [L]          input elements for one sample; activation size = a_numel * b bits
      act_range    float32 [G, L, M, 2]  activation (lo, hi) per group and bit width
      act_minmax   float32 [G, L, 2]  calibration min/max of each layer's input
      act_hist     float32 [G, L, B]  density histogram over [min, max] of that group
      calib_x      float32 [G, N, C, H, W], calib_t int64 [G, N]
      measured     bool [M]           bit widths measured (all, except in fast mode)
      a_split      int64 [L]          input channel where a concatenated input splits (0: one range)
      act_range_parts float32 [G, L, M, 2, 2]  (lo, hi) of each part of a split input (zeros if unsplit)
      held_out_x   float32 [G, N, C, H, W], held_out_t int64 [G, N]: the inputs the curves were measured on when
                   they are held out from the fitting (``profile(held_out_seed=...)``); None: measured on calib_x
    """

    layer_names: list[str]
    layer_types: list[str]
    bits: np.ndarray
    num_timesteps: int
    num_groups: int
    w_numel: np.ndarray
    a_numel: np.ndarray
    d_w: np.ndarray
    d_a: np.ndarray
    act_range: np.ndarray
    act_minmax: np.ndarray
    act_hist: np.ndarray
    calib_x: np.ndarray
    calib_t: np.ndarray
    measured: np.ndarray
    fingerprint: str
    meta: dict = field(default_factory=dict)
    a_split: np.ndarray | None = None
    act_range_parts: np.ndarray | None = None
    held_out_x: np.ndarray | None = None
    held_out_t: np.ndarray | None = None

    def __post_init__(self):
        # profiles written before split concat inputs existed: every input has one range
        if self.a_split is None:
            self.a_split = np.zeros(len(self.layer_names), dtype=np.int64)
        if self.act_range_parts is None:
            self.act_range_parts = np.zeros(self.act_range.shape[:3] + (2, 2), dtype=np.float32)

    @property
    def groups(self) -> TimestepGroups:
        return TimestepGroups(self.num_timesteps, self.num_groups)

    @property
    def num_layers(self) -> int:
        return len(self.layer_names)

    def curves(self, kind: str) -> np.ndarray:
        """D [G, L, M] of kind 'w' or 'a'."""
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r}: choose 'w' (weights) or 'a' (activations).")
        return self.d_w if kind == "w" else self.d_a

    def sizes(self, kind: str) -> np.ndarray:
        """Size in bits [L, M] of each quantizer at each candidate bit width; per-token activations add
        their per-token range parameters (``a_overhead_bits``)."""
        numel = self.w_numel if kind == "w" else self.a_numel
        size = numel[:, None].astype(np.float64) * self.bits[None, :].astype(np.float64)
        return size + self.a_overhead_bits[:, None] if kind == "a" else size

    def token_layers(self) -> dict[str, int]:
        """{layer: token elements} of the layers whose inputs take per-token dynamic ranges (empty for a
        per-tensor profile)."""
        return {n: int(k) for n, k in self.meta.get("token_layers", {}).items()}

    @property
    def a_overhead_bits(self) -> np.ndarray:
        """float64 [L]: bits per sample that a quantized input stores beside its values: TOKEN_PARAM_BITS per
        token of a per-token layer (a_numel / token elements tokens), 0 for per-tensor ranges (a handful of
        floats per layer and group, as the weights' per-channel scales are not counted either)."""
        tok = self.token_layers()
        bits = float(self.meta.get("token_param_bits", TOKEN_PARAM_BITS))
        return np.array([self.a_numel[i] / tok[n] * bits if n in tok else 0.0 for i, n in enumerate(self.layer_names)])

    def check_model(self, model: DiffusionModel) -> None:
        fp = model.fingerprint()
        if fp != self.fingerprint:
            raise ValueError(
                f"this profile was made for another model (fingerprint {self.fingerprint}, model {fp} "
                f"from {model.source}); profile this model with dadq.profile / `python -m dadq profile`, "
                "or load the profile that belongs to it."
            )

    def activation_ranges_for(self, a_bits: np.ndarray) -> np.ndarray:
        """(lo, hi) [G, L, 2] for activation bits [G, L]; FP entries get the calibration min/max."""
        idx = option_index(self.bits, a_bits)
        g = np.arange(idx.shape[0])[:, None]
        l = np.arange(idx.shape[1])[None, :]
        chosen = self.act_range[g, l, np.maximum(idx, 0)].astype(np.float64)
        return np.where((idx >= 0)[..., None], chosen, self.act_minmax.astype(np.float64))

    def activation_part_ranges_for(self, a_bits: np.ndarray) -> np.ndarray:
        """Per-part (lo, hi) [G, L, 2, 2] of split inputs for activation bits [G, L] (zeros where FP)."""
        idx = option_index(self.bits, a_bits)
        g = np.arange(idx.shape[0])[:, None]
        l = np.arange(idx.shape[1])[None, :]
        chosen = self.act_range_parts[g, l, np.maximum(idx, 0)].astype(np.float64)
        return np.where((idx >= 0)[..., None, None], chosen, 0.0)

    def curve_inputs(self) -> tuple[np.ndarray, np.ndarray, int]:
        """(x [G, N, C, H, W], t [G, N], calibration seed) of the inputs the curves were measured on: the held-out
        draw where there is one, else the calibration inputs the quantizers were fitted on."""
        if self.held_out_x is not None:
            return self.held_out_x, self.held_out_t, int(self.meta["held_out_seed"])
        return self.calib_x, self.calib_t, int(self.meta.get("seed", 0))

    def split_layers(self) -> dict[str, int]:
        """{layer: split channel} of the layers whose input takes one range per concatenated part."""
        return {n: int(s) for n, s in zip(self.layer_names, self.a_split) if s > 0}

    def setup_quantizers(self, qunet: QuantizedUNet, model: DiffusionModel) -> None:
        """Give a QuantizedUNet of ``model`` the quantizers this profile's curves were measured with:
        rounding, bias correction (both from this profile's calibration inputs, run with its
        conditioning) and split inputs."""
        s = self.settings()
        call = conditioned_call(model, model.unet, profile_conditioning(model, self)) if needs_calibration(s) else None
        qunet.setup(self.calib_x, self.calib_t, rounding=s["rounding"], bias_correction=s["bias_correction"],
                    a_split=self.split_layers(), call=call, a_token=self.token_layers(),
                    weight_grid=grid_of(s), token_samples=s.get("act_granularity") == "sample")

    def settings(self) -> dict:
        """The header facts an allocation depends on besides the model and the layers: how weights
        were rounded, whether biases were corrected, which distortion the curves measure, and (only when
        not per tensor) the activation granularity. A profile written before a field existed gets the
        value it was made with."""
        out = {k: self.meta.get(k, default) for k, default in SETTINGS.items()}
        # absent when per tensor, so allocations saved before the option existed still match their profiles
        if self.meta.get("act_granularity", "tensor") != "tensor":
            out["act_granularity"] = self.meta["act_granularity"]
        if grid_of(self.meta) != grid_of({}):  # the same, for the weight grid
            out["weight_grid"] = self.meta["weight_grid"]
        return out

    def to_frame(self):
        """A tidy pandas DataFrame, one row per (kind, group, layer, width): layer, kind ('w'/'a'),
        group, bits, D, size_bits (numel x bits; A: one sample's input), measured (False: filled by
        fast mode's noise model)."""
        import pandas as pd

        G, L, M = self.d_w.shape
        parts = []
        for kind in KINDS:
            parts.append(pd.DataFrame({
                "layer": np.tile(np.repeat(np.asarray(self.layer_names, dtype=object), M), G), "kind": kind,
                "group": np.repeat(np.arange(G), L * M), "bits": np.tile(self.bits.astype(np.int64), G * L),
                "D": self.curves(kind).ravel().astype(float),
                "size_bits": np.tile(self.sizes(kind).ravel(), G).astype(np.int64),
                "measured": np.tile(self.measured.astype(bool), G * L),
            }))
        return pd.concat(parts, ignore_index=True)

    # --- persistence: one safetensors file, JSON metadata in its header -------------------------
    _ARRAYS = ("bits", "w_numel", "a_numel", "d_w", "d_a", "act_range", "act_minmax", "act_hist",
               "calib_x", "calib_t", "measured")
    _OPTIONAL_ARRAYS = ("a_split", "act_range_parts")  # absent from older profiles
    _HELD_OUT_ARRAYS = ("held_out_x", "held_out_t")  # only where the curves were measured on a held-out draw

    def save(self, path: str | Path) -> Path:
        """Write atomically to ``path`` (.safetensors); returns the path."""
        from safetensors.numpy import save_file

        path = Path(path)
        header = {"format": FORMAT, "layer_names": self.layer_names, "layer_types": self.layer_types,
                  "num_timesteps": self.num_timesteps, "num_groups": self.num_groups,
                  "fingerprint": self.fingerprint, "meta": self.meta}
        arrays = {k: np.ascontiguousarray(getattr(self, k)) for k in self._ARRAYS + self._OPTIONAL_ARRAYS
                  + self._HELD_OUT_ARRAYS if getattr(self, k) is not None}
        arrays["measured"] = arrays["measured"].astype(np.uint8)
        with atomic_path(path) as tmp:
            save_file(arrays, str(tmp), metadata={"dadq": json.dumps(header)})
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Profile":
        from safetensors import safe_open

        path = Path(path)
        if not path.exists():
            raise ValueError(f"no profile file at {path}; make one with `python -m dadq profile`.")
        try:
            with safe_open(str(path), framework="numpy") as f:
                header = json.loads((f.metadata() or {})["dadq"])
                arrays = {k: f.get_tensor(k) for k in cls._ARRAYS}
                arrays.update({k: f.get_tensor(k) for k in cls._OPTIONAL_ARRAYS + cls._HELD_OUT_ARRAYS
                               if k in f.keys()})  # noqa: SIM118 (not a dict)
        except Exception as e:
            raise ValueError(
                f"{path} is not a readable dadq profile: it is corrupt or truncated ({type(e).__name__}). "
                "Re-create it with `python -m dadq profile` or copy it again."
            ) from None
        if header.get("format") != FORMAT:
            raise ValueError(f"{path} has format {header.get('format')!r}, expected {FORMAT!r}.")
        arrays["measured"] = arrays["measured"].astype(bool)
        return cls(layer_names=header["layer_names"], layer_types=header["layer_types"],
                   num_timesteps=header["num_timesteps"], num_groups=header["num_groups"],
                   fingerprint=header["fingerprint"], meta=header["meta"], **arrays)


# --- what the curves say: views of a Profile ---------------------------------------------------------

def group_curves(profile: Profile, kind: str, group: int | None = None) -> np.ndarray:
    """D [L, M] of kind 'w' or 'a' in one timestep group, or the mean over groups (group None or -1)."""
    d = profile.curves(kind)
    if group is None or group < 0:
        return d.mean(axis=0)
    if not 0 <= group < profile.num_groups:
        raise ValueError(f"group {group} is out of range 0..{profile.num_groups - 1}.")
    return d[group]


def sensitivity_ranking(profile: Profile, group: int | None = None, bits: int | None = None):
    """Layers ranked by D_W + D_A at ``bits`` (default: the lowest profiled width), most sensitive
    first, in one group or the mean over groups. Returns (bits, order int [L], D_W [L], D_A [L])."""
    b = int(profile.bits[0]) if bits is None else int(bits)
    m = option_index(profile.bits, b, fp_ok=False)
    dw = group_curves(profile, "w", group)[:, m]
    da = group_curves(profile, "a", group)[:, m]
    return b, np.argsort(-(dw + da), kind="stable"), dw, da


def most_sensitive_layer(profile: Profile) -> str:
    """The layer with the largest D_W + D_A at the lowest bit width, mean over groups."""
    return profile.layer_names[int(sensitivity_ranking(profile)[1][0])]


def most_group_dependent_layer(profile: Profile) -> str:
    """The layer whose calibrated input range varies most across groups (largest max/min width ratio)."""
    width = (profile.act_minmax[..., 1] - profile.act_minmax[..., 0]).astype(np.float64)  # [G, L]
    ratio = width.max(0) / np.maximum(width.min(0), 1e-12)
    return profile.layer_names[int(np.argmax(ratio))]


# --- the profiler ------------------------------------------------------------------------------

def select_layers(names: list[str], layers) -> list[str]:
    """Filter layer names by glob pattern(s); a pattern starting with 're:' is a regex."""
    if layers is None:
        return list(names)
    pats = [layers] if isinstance(layers, str) else list(layers)
    keep = []
    for n in names:
        for p in pats:
            if (p.startswith("re:") and re.search(p[3:], n)) or (not p.startswith("re:") and fnmatch.fnmatchcase(n, p)):
                keep.append(n)
                break
    if not keep:
        raise ValueError(f"layers={layers!r} matches no Conv2d/Linear layer; e.g. {names[:3]} (glob, or 're:' + regex).")
    return keep


class PrefixRunner:
    """Runs a QuantizedUNet with the FP outputs of the unchanged prefix served from a cache.

    Every module call in a pass gets a position, in call order; a module's position comes before
    those of the modules it calls. ``record`` stores each call's FP output and the position where
    the call ends. ``run(skip_until=p)`` serves a call from the cache when the whole call lies
    before p (end <= p): a block that ends before the quantized layer costs one lookup, so its
    adds, concatenations and attention arithmetic are skipped too, not only its leaf modules.
    Calls from p on compute as usual. The positions are those of the recorded pass: the same
    module tree and call order every pass, whatever the bit widths.
    """

    def __init__(self, qunet: QuantizedUNet, call=None):
        self.qunet = qunet
        # call(x, t) -> eps: how the model runs qunet (conditioning, guidance); default qunet(x, t).sample
        self.call = call or (lambda x, t: qunet(x, t).sample)
        self.modules = list(qunet.inner.modules())
        self.layer_of = {id(ql): name for name, ql in qunet.layers.items()}
        self.pos = 0
        self.skip_until = 0
        self.recording = False
        self.cache: list = []
        self.end: list[int] = []
        self.first_pos: dict[str, int] = {}
        self.inputs: dict[str, torch.Tensor] = {}

    def __enter__(self):
        for m in self.modules:
            m.forward = self._wrap(m, m.forward)
        return self

    def __exit__(self, *exc):
        for m in self.modules:
            del m.forward
        self.cache, self.end, self.inputs = [], [], {}

    def _wrap(self, module: nn.Module, orig):
        name = self.layer_of.get(id(module))

        def forward(*args, **kwargs):
            pos = self.pos
            self.pos += 1
            if self.recording:
                if name is not None and name not in self.first_pos:
                    self.first_pos[name] = pos
                    self.inputs[name] = args[0]
                self.cache.append(None)
                self.end.append(pos + 1)
                out = orig(*args, **kwargs)
                self.cache[pos], self.end[pos] = out, self.pos
                return out
            end = self.end[pos]
            if end <= self.skip_until:
                self.pos = end
                return self.cache[pos]
            return orig(*args, **kwargs)

        return forward

    @torch.no_grad()
    def record(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.cache, self.end, self.inputs, self.first_pos = [], [], {}, {}
        self.recording, self.pos = True, 0
        try:
            return self.call(x, t)
        finally:
            self.recording = False

    @torch.no_grad()
    def run(self, x: torch.Tensor, t: torch.Tensor, skip_until: int = 0) -> torch.Tensor:
        self.pos, self.skip_until = 0, skip_until
        return self.call(x, t)


def conditioned_call(model: DiffusionModel, qunet: QuantizedUNet, cond: dict):
    """call(x, t) -> eps of ``qunet`` run as ``model`` runs it, with the calibration conditioning ``cond``
    (labels / encoder_hidden_states of the first x.shape[0] trajectories, guidance scale)."""
    qmodel = model.with_net(qunet)

    def call(x, t):
        kw = {k: (v[:x.shape[0]].to(x.device) if torch.is_tensor(v) else v) for k, v in cond.items()}
        return qmodel.eps(x, t, **kw)

    return call


def fill_noise_model(d: np.ndarray, bits: np.ndarray, measured: np.ndarray,
                     noise: np.ndarray | None = None) -> np.ndarray:
    """Fill unmeasured bit widths of curves d [..., M] from the measured ones (bool [M]).

    noise [..., M]: the quantizer's local noise power at every width (``local_noise``). Between two
    measured widths, log D is interpolated linearly in log noise: D ∝ noise^α with α fitted to the
    two neighbours, so clipping and rounding effects that the noise shows carry into the fill.
    Outside the measured range α = 1. Without ``noise`` the textbook model noise ∝ 2^(-2b) stands in
    (log D linear in b between measured points, slope -2 ln 2 per bit outside).
    """
    if noise is None:
        noise = np.broadcast_to(4.0 ** -bits.astype(np.float64), d.shape)
    out = d.copy()
    logd = np.log(np.maximum(d, 1e-30))
    logn = np.log(np.maximum(noise, 1e-30))
    idx = np.flatnonzero(measured)
    for m in np.flatnonzero(~measured):
        if m < idx[0] or m > idx[-1]:
            j = idx[0] if m < idx[0] else idx[-1]
            val = logd[..., j] + logn[..., m] - logn[..., j]
        else:
            k = int(np.searchsorted(idx, m))
            lo, hi = idx[k - 1], idx[k]
            span = logn[..., hi] - logn[..., lo]
            flat = np.abs(span) < 1e-9  # the noise did not change: interpolate in b instead
            w = np.where(flat, (m - lo) / (hi - lo), (logn[..., m] - logn[..., lo]) / np.where(flat, 1.0, span))
            w = np.clip(w, 0.0, 1.0)
            val = (1 - w) * logd[..., lo] + w * logd[..., hi]
        out[..., m] = np.exp(val)
    return out


def fast_bits(bits: np.ndarray) -> np.ndarray:
    """bool [M]: the bit widths fast mode measures: the lowest, a third and two thirds of the way up.

    Low widths are where the curves bend and where allocations at 3-4 average bits choose, so
    measured points there help more than one at the top. Above the top measured width the fill
    takes D proportional to the noise power (``fill_noise_model``): there the noise is a small
    perturbation. On the shipped profile, measuring {2, 4, 6} lost less allocation quality than
    {2, 4, 8} (``benchmarks/profile_speed.py``, table "fill variants").
    """
    if len(bits) <= 3:
        return np.ones(len(bits), dtype=bool)
    m = np.zeros(len(bits), dtype=bool)
    m[[0, (len(bits) - 1) // 3, 2 * (len(bits) - 1) // 3]] = True
    return m


NOISE_SAMPLES = 2


@torch.no_grad()
def local_noise(ql, a: torch.Tensor, bits: np.ndarray, act_range: np.ndarray,
                act_range_parts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The noise power each quantizer adds at the output of its own layer, float64 [M] for W and for A.

    ql: a QuantLayer in the group being profiled (its weights carry their rounding and bias
    correction); a: its FP input on the calibration batch; act_range [M, 2]: activation (lo, hi) per
    width, act_range_parts [M, 2, 2] those of the parts if ql's input is split. One layer forward per
    width, no network forward: fast mode's noise model. Only the
    first NOISE_SAMPLES samples are used: the fill needs just the noise's ratios across widths,
    which two samples' thousands of output elements already pin down.
    """
    a = a[:NOISE_SAMPLES]
    y = ql.op(a, ql.weight, None)
    nw, na = np.zeros(len(bits)), np.zeros(len(bits))
    g = ql.state.group
    for m, b in enumerate(bits):
        b = int(b)
        bias_q = ql.quantized_bias(b, g)  # bias correction: the bias change, else none
        delta = None if bias_q is ql.bias else bias_q - (ql.bias if ql.bias is not None else 0.0)
        nw[m] = float((ql.op(a, ql.quantized_weight(b, g), delta) - y).pow(2).mean())
        aq = ql.quantize_input_with(a, b, act_range[m], None if act_range_parts is None else act_range_parts[m])
        na[m] = float((ql.op(aq, ql.weight, None) - y).pow(2).mean())
    return nw, na


def output_noise(model: DiffusionModel, prof: "Profile") -> tuple[np.ndarray, np.ndarray]:
    """local_noise of every (group, quantizer, width) of ``prof``, on its calibration inputs:
    two float64 arrays [G, L, M] (W, A). For re-filling an exact profile as fast mode would."""
    prof.check_model(model)
    qunet = QuantizedUNet(model.unet, prof.groups, prof.layer_names).eval()
    prof.setup_quantizers(qunet, model)
    shape = (prof.num_groups, len(prof.layer_names), len(prof.bits))
    nw, na = np.zeros(shape), np.zeros(shape)
    cond = profile_conditioning(model, prof)
    with PrefixRunner(qunet, conditioned_call(model, qunet, cond)) as runner, full_fp32(model.device):
        for g in range(prof.num_groups):
            qunet.state.group = g
            runner.record(torch.from_numpy(prof.calib_x[g]).to(model.device),
                          torch.from_numpy(prof.calib_t[g]).to(model.device))
            for li, name in enumerate(prof.layer_names):
                nw[g, li], na[g, li] = local_noise(qunet.layers[name], runner.inputs[name], prof.bits,
                                                   prof.act_range[g, li], prof.act_range_parts[g, li])
    return nw, na


def profile(model: DiffusionModel, groups: int | TimestepGroups = 10, bits=range(2, 9), calib_per_group: int = 16,
            mode: str = "exact", layers=None, seed: int = 0, calib_steps: int | None = None,
            device: str | torch.device | None = None, progress=None, rounding: str = "rtn",
            bias_correction: bool = False, metric: str = DEFAULT_METRIC,
            split_concat: bool = SPLIT_CONCAT_DEFAULT, guidance_scale: float | None = None,
            act_granularity: str = "tensor", weight_grid: str = "symmetric",
            held_out_seed: int | None = None) -> Profile:
    """Measure RD curves of every quantizer in every timestep group.

    groups: G (equal split of T) or a TimestepGroups. bits: candidate bit widths (1..16).
    calib_per_group: N calibration samples per group. mode: 'exact' | 'naive' | 'fast'.
    layers: glob pattern(s) ('re:' prefix for regex) restricting the profiled layers.
    progress: optional callable(fraction, text), called after each measured point; it may raise
    to cancel (nothing is written then).
    rounding: 'rtn' (round to nearest), 'gptq' (Hessian pooled over all groups' calibration inputs,
    ``dadq.rounding``), 'gptq-act' (the same, columns in activation order), or 'gptq-group' / 'gptq-act-group'
    (one Hessian per timestep group: each group's weight is its own copy). bias_correction: fold each
    quantized weight's mean output shift, per group, into the bias. metric: the distortion D
    ('ssim+mse', the paper's; 'mse'; 'ssim').
    split_concat: one activation range per part of a UNet up block's concatenated skip input.
    All four are recorded in the header (``Profile.settings``); ``quantize`` rebuilds the same weights.
    guidance_scale: classifier-free guidance of a conditional model's calibration (default: the model's
    own, ``model.guidance_scale``; 1 = conditional branch only). Every calibration input is evaluated as
    the sampler runs it: both branches in one batch, and D is measured on the guided eps
    (``dadq.calibrate``); meta["calibration"] records the classes, the scale and the branches.
    act_granularity: 'tensor' (one range per layer, group and width) or 'token' (each token of a Linear's
    input, and each patch of a patchify conv's, gets its own dynamic range, shrunk by a calibrated clip
    ratio; TOKEN_PARAM_BITS per token are added to the activation size, ``Profile.a_overhead_bits``).
    Other convs keep per-tensor ranges. 'sample': every layer's input is one token per sample (dynamic per-tensor
    ranges: each sample's own min/max x the calibrated ratio; split_concat does not apply). Recorded in meta
    (act_granularity, token_layers, token_param_bits).
    weight_grid: 'symmetric' (zero point 0, the narrow grid) or 'asymmetric' (each output channel's own
    zero point: all 2^bits levels over its [min, max]); ``quant.weight_grid``. Recorded in meta.
    held_out_seed: measure the curves on a second draw of N trajectories per group from this calibration seed,
    held out from what the quantizers are fitted on (GPTQ's Hessians, bias correction, activation ranges, all from
    ``seed``'s draw), so that every D is an out-of-sample error; None (default): measured on the fitting inputs.
    The held-out inputs are stored (``Profile.curve_inputs``) and recorded in meta; the quantized weights are the
    same either way.
    """
    if act_granularity not in ACT_GRANULARITIES:
        raise ValueError(f"act_granularity={act_granularity!r}: choose one of {ACT_GRANULARITIES}.")
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: choose one of {MODES}.")
    check_weight_grid(weight_grid)
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding={rounding!r}: choose one of {ROUNDINGS}.")
    check_metric(metric)
    if held_out_seed is not None and int(held_out_seed) == int(seed):
        raise ValueError(f"held_out_seed={held_out_seed} is the fitting seed: held-out curves need another draw; "
                         "pass a different calibration seed (or None to measure on the fitting inputs).")
    bits = np.array(sorted(set(int(b) for b in bits)), dtype=np.int64)
    if len(bits) == 0 or bits[0] < 1 or bits[-1] > 16:
        raise ValueError(f"bits={bits.tolist()}: candidate bit widths must lie in 1..16.")
    if not isinstance(groups, TimestepGroups):
        groups = TimestepGroups(model.num_timesteps, int(groups))
    if device is not None:
        model.unet.to(device)
    dev = model.device
    t_start = time.perf_counter()
    calib_x, calib_t = calibration_inputs(model, groups, calib_per_group, seed=seed, steps=calib_steps,
                                          guidance_scale=guidance_scale)
    cond, calib_desc = calibration_conditioning(model, calib_per_group, seed, guidance_scale)
    held_x = held_t = None
    if held_out_seed is not None:
        held_x, held_t = calibration_inputs(model, groups, calib_per_group, seed=held_out_seed, steps=calib_steps,
                                            guidance_scale=guidance_scale)
        held_cond, _ = calibration_conditioning(model, calib_per_group, held_out_seed, guidance_scale)

    from .models import quantizable_layers

    names = select_layers([n for n, _ in quantizable_layers(model.unet)], layers)
    qunet = QuantizedUNet(model.unet, groups, names).eval()
    splits = {n: s for n, s in concat_splits(model.unet).items() if n in names} if split_concat else {}
    tokens = token_layers(model.unet, names) if act_granularity == "token" else {}
    # a token's (or a sample's own) range already fits each part
    splits = {} if act_granularity == "sample" else {n: s for n, s in splits.items() if n not in tokens}
    qunet.setup(calib_x, calib_t, rounding=rounding, bias_correction=bias_correction, a_split=splits,
                call=conditioned_call(model, model.unet, cond), a_token=tokens, weight_grid=weight_grid)
    measured = fast_bits(bits) if mode == "fast" else np.ones(len(bits), dtype=bool)
    G, M = groups.num_groups, len(bits)
    d = {k: np.full((G, len(names), M), np.nan) for k in KINDS}
    act_range = np.zeros((G, len(names), M, 2), dtype=np.float32)
    act_range_parts = np.zeros((G, len(names), M, 2, 2), dtype=np.float32)
    act_minmax = np.zeros((G, len(names), 2), dtype=np.float32)
    act_hist = np.zeros((G, len(names), HIST_BINS), dtype=np.float32)
    noise = {k: np.zeros((G, len(names), M)) for k in KINDS}
    a_numel = np.zeros(len(names), dtype=np.int64)
    total = G * len(names) * 2 * int(measured.sum())
    bar = tqdm(total=total, desc=f"profile ({mode})", unit="pt")
    done = 0
    order = None
    fit_call = conditioned_call(model, qunet, cond)
    held_call = None if held_out_seed is None else conditioned_call(model, qunet, held_cond)
    with PrefixRunner(qunet, fit_call) as runner, full_fp32(dev):
        for g in range(G):
            qunet.state.group = g
            runner.call = fit_call
            x, t = calib_x[g].to(dev), calib_t[g].to(dev)
            eps_fp = runner.record(x, t)
            if order is None:  # execution order, the order layers are shown and stored in
                order = sorted(range(len(names)), key=lambda i: runner.first_pos[names[i]])
            for li, name in enumerate(names):
                a = runner.inputs[name]
                a_numel[li] = a[0].numel()
                if act_granularity == "sample":  # one token per sample: its size is known once the input is seen
                    qunet.layers[name].a_token, qunet.layers[name].a_sample = int(a_numel[li]), True
                    tokens[name] = int(a_numel[li])
                act_hist[g, li], lo, hi = histogram(a)
                act_minmax[g, li] = (lo, hi)
                s = qunet.layers[name].a_split
                for m, b in enumerate(bits):
                    if qunet.layers[name].a_token:  # per-token: the calibrated clip ratio, twice
                        act_range[g, li, m] = token_clip_ratio(a, int(b), **qunet.layers[name].token_shape)
                        continue
                    act_range[g, li, m] = activation_range(a, int(b))
                    if s:
                        act_range_parts[g, li, m] = (activation_range(a[:, :s], int(b)), activation_range(a[:, s:], int(b)))
                if not measured.all():
                    noise["w"][g, li], noise["a"][g, li] = local_noise(qunet.layers[name], a, bits, act_range[g, li],
                                                                       act_range_parts[g, li])
            if held_call is not None:  # the ranges above come from the fitting draw; every D below is out of sample
                runner.call = held_call
                x, t = held_x[g].to(dev), held_t[g].to(dev)
                eps_fp = runner.record(x, t)
            for li, name in enumerate(names):
                ql = qunet.layers[name]
                skip = runner.first_pos[name] if mode != "naive" else 0
                for kind in KINDS:
                    for m in np.flatnonzero(measured):
                        b = int(bits[m])
                        if kind == "w":
                            ql.w_bits[g] = b
                        else:
                            ql.a_bits[g] = b
                            ql.a_range[g] = tuple(act_range[g, li, m])
                            ql.a_range_parts[g] = act_range_parts[g, li, m]
                        d[kind][g, li, m] = distortion(eps_fp, runner.run(x, t, skip), metric)
                        ql.w_bits[g] = ql.a_bits[g] = FP_BITS
                        done += 1
                        bar.update(1)
                        if progress is not None:
                            progress(done / total, f"profile: group {g + 1}/{G}, {name} {kind.upper()}{b}")
    bar.close()
    if mode == "fast" and not measured.all():
        for k in KINDS:
            d[k] = fill_noise_model(d[k], bits, measured, noise[k])
    w_numel = np.array([qunet.layers[n].weight.numel() for n in names], dtype=np.int64)
    types = ["Conv2d" if qunet.layers[n].is_conv else "Linear" for n in names]
    o = np.array(order)
    clip_by = "output-error" if uses_output_clip(rounding) else "MSE"
    meta = {
        "source": model.source, "mode": mode, "calib_per_group": calib_per_group, "seed": seed,
        "calib_steps": calib_steps or min(model.num_timesteps, max(100, 2 * G)), "calib_sampler": "DDIM, eta=0",
        "seconds": round(time.perf_counter() - t_start, 2), "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "distortion": METRICS[metric], "ssim": SSIM_PARAMS, "metric": metric,
        "rounding": rounding, "bias_correction": bool(bias_correction), "split_concat": bool(split_concat),
        "weight_grid": weight_grid,
        "weight_quantizer": (f"symmetric per-output-channel, narrow range, {clip_by} clip search over {len(WEIGHT_CLIP_GRID)} "
                             f"ratios {WEIGHT_CLIP_GRID[0]:.2f}-1.00; 1 bit = sign x mean|w|; "
                             if weight_grid == "symmetric" else
                             f"asymmetric per-output-channel (a zero point per channel, 2^bits levels over [min, max] "
                             f"shrunk by the {clip_by}-best of {len(WEIGHT_CLIP_GRID)} ratios {WEIGHT_CLIP_GRID[0]:.2f}-1.00); ")
                            + describe_rounding(rounding)
                            + ("; bias corrected per group (mean output shift on the calibration inputs)"
                               if bias_correction else ""),
        # split inputs store two (lo, hi) per group instead of one: 2 more floats per (layer, group)
        "split_layers": {names[i]: int(qunet.layers[names[i]].a_split) for i in order if qunet.layers[names[i]].a_split},
        "activation_quantizer": f"asymmetric per-tensor, range per (layer, group, bits): min/max shrunk by the MSE-best of "
                                f"{len(ACT_CLIP_GRID)} ratios {ACT_CLIP_GRID[0]:.2f}-1.00",
        "act_granularity": act_granularity,
        **({"token_layers": {names[i]: tokens[names[i]] for i in order if names[i] in tokens},
            "token_param_bits": TOKEN_PARAM_BITS,
            "token_quantizer": "asymmetric per-token dynamic: each token's ("
                               + ("a Linear input's last dim; a patchify conv's patch" if act_granularity == "token"
                                  else "one sample's whole input") +
                               f") own min/max x a clip ratio per (layer, group, bits), the MSE-best of "
                               f"{len(ACT_CLIP_GRID)} ratios {ACT_CLIP_GRID[0]:.2f}-1.00 (act_range holds (ratio, "
                               f"ratio)); {TOKEN_PARAM_BITS} bits of range per token counted in the size"}
           if act_granularity != "tensor" else {}),
        "layers_filter": layers if layers is None or isinstance(layers, str) else list(layers),
        "device": str(dev), "model_kind": model.kind, "calibration": calib_desc,
        **({"held_out_seed": int(held_out_seed),
            "curves_measured_on": f"a held-out draw of {calib_per_group} trajectories per group (calibration seed "
                                  f"{int(held_out_seed)}); the quantizers are fitted on seed {seed}'s draw"}
           if held_out_seed is not None else {}),
    }
    return Profile(
        layer_names=[names[i] for i in o], layer_types=[types[i] for i in o], bits=bits,
        num_timesteps=groups.num_timesteps, num_groups=G, w_numel=w_numel[o], a_numel=a_numel[o],
        d_w=d["w"][:, o], d_a=d["a"][:, o], act_range=act_range[:, o], act_minmax=act_minmax[:, o],
        act_hist=act_hist[:, o], calib_x=calib_x.numpy(), calib_t=calib_t.numpy(), measured=measured,
        fingerprint=model.fingerprint(), meta=meta,
        a_split=np.array([qunet.layers[names[i]].a_split for i in o], dtype=np.int64),
        act_range_parts=act_range_parts[:, o],
        held_out_x=None if held_x is None else held_x.numpy(), held_out_t=None if held_t is None else held_t.numpy(),
    )
