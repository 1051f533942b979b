"""Quantizers, the fake-quant layer wrapper, and ``quantize(model, profile, allocation)``.

Weights: symmetric, per output channel, narrow range (levels -q..q with q = 2^(b-1) - 1); the clip
scale of each channel minimises that channel's weight MSE over ``WEIGHT_CLIP_GRID`` (with ``gptq-act-clip``,
the layer's output error after GPTQ). 1 bit is
sign(w) x mean|w| per channel, since a symmetric 1-bit grid would hold only zero.
Activations: asymmetric, per tensor, 2^b levels over a range [lo, hi] per (layer, group, bits),
chosen by an MSE search over shrunk min/max ranges (``activation_range``). Option (``act_granularity=
"token"``, for transformers): every token of a Linear's input (its last dimension), and every patch of a
patchify Conv2d's input, gets its own dynamic range: its min/max at run time, shrunk by a clip ratio
calibrated per (layer, group, bits) (``token_clip_ratio``). Option ``act_granularity="sample"``: the same, with
each sample's whole input as one token (dynamic per-tensor ranges, one per sample and layer). Each token's range
is stored at run time as an fp16 scale and an fp16 zero point: TOKEN_PARAM_BITS per token, counted in the
activation size.
Bit widths 1..16 are quantized; FP_BITS (32) means full precision: the layer runs unquantized.
Rounding onto the weight grid: round to nearest or GPTQ, and bias correction (``dadq.rounding``).
Concatenated inputs (a UNet up block's skip + upsampled path) can take one range per part.
"""
from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .bitwidths import FP_BITS, is_fp
from .groups import TimestepGroups
from .models import QUANTIZABLE, DiffusionModel, fast_layout_like
from .rounding import (DAMP, ROUNDINGS, calibration_stats, gptq, hessian_factor, needs_calibration, output_shift,
                       per_group_hessian, round_to_grid, uses_act_order, uses_hessian, uses_output_clip)

WEIGHT_CLIP_GRID = np.linspace(0.30, 1.0, 36)
ACT_CLIP_GRID = np.linspace(0.30, 1.0, 36)
ACT_SEARCH_SAMPLES = 1 << 15
ACT_GRANULARITIES = ("tensor", "token", "sample")
WEIGHT_GRIDS = ("symmetric", "asymmetric")  # per-channel weight grid: zero point 0 (narrow) or its own
TOKEN_PARAM_BITS = 32  # per token: fp16 scale + fp16 zero point, what a kernel keeps to dequantize it


def check_weight_grid(grid: str) -> None:
    """Refuse a weight grid that is none of WEIGHT_GRIDS."""
    if grid not in WEIGHT_GRIDS:
        raise ValueError(f"weight_grid={grid!r}: choose one of {WEIGHT_GRIDS}.")


def grid_of(settings: dict) -> str:
    """The weight grid of ``Profile.settings`` / ``Allocation.settings``: absent means symmetric, the grid of every
    profile made before the option existed."""
    return settings.get("weight_grid", WEIGHT_GRIDS[0])


def weight_grid_candidates(flat: torch.Tensor, bits: int, grid: str = "symmetric") -> list[tuple[torch.Tensor, torch.Tensor | None]]:
    """The per-channel grids (scale [C_out, 1], zero [C_out, 1] or None) of a weight flat [C_out, K] at
    ``bits`` (2..16), one per clip ratio of WEIGHT_CLIP_GRID, among which ``weight_grid`` (or
    ``gptq-act-clip``, by output error) picks each channel's.

    grid 'symmetric': zero None, the narrow grid {-q..q} · scale (q = 2^(bits-1) - 1), scale = max |w| · ratio / q.
    'asymmetric': 2^bits levels (k - zero) · scale, k = 0..2^bits - 1, spanning the channel's [min w, max w], each
    end shrunk by the ratio; its zero point (an integer of ``bits`` bits per channel) is stored beside the scale."""
    check_weight_grid(grid)
    if grid == "symmetric":
        qmax = 2 ** (bits - 1) - 1
        maxabs = flat.abs().amax(1, keepdim=True).clamp_min(1e-12)
        return [(maxabs * float(ratio) / qmax, None) for ratio in WEIGHT_CLIP_GRID]
    lo0 = flat.amin(1, keepdim=True).clamp_max(0.0)  # the grid always holds 0: a zero weight stays zero
    hi0 = flat.amax(1, keepdim=True).clamp_min(0.0)
    out = []
    for ratio in WEIGHT_CLIP_GRID:
        lo = lo0 * float(ratio)
        scale = (hi0 * float(ratio) - lo).clamp_min(1e-12) / (2 ** bits - 1)
        out.append((scale, torch.round(-lo / scale)))
    return out


def weight_grid(flat: torch.Tensor, bits: int, grid: str = "symmetric") -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-output-channel grid (scale [C_out, 1], zero [C_out, 1] or None) of a weight flat [C_out, K] at
    ``bits`` (1..16): of ``weight_grid_candidates``, each channel's with the least round-to-nearest weight MSE.
    At 1 bit (either grid), sign(w) · mean |w| (a symmetric 1-bit grid would hold only zero). Every rounding but
    ``gptq-act-clip`` uses this grid, fixed before any rounding."""
    check_weight_grid(grid)
    if bits == 1:  # either grid: two levels of one grid would waste one on zero
        return flat.abs().mean(1, keepdim=True), None
    cands = weight_grid_candidates(flat, bits, grid)
    err = torch.stack([(round_to_grid(flat, sc, bits, z) - flat).pow(2).mean(1) for sc, z in cands])
    return _pick_rows(cands, err)


def _pick_rows(cands: list, err: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Each row's (scale, zero) from ``cands`` (n grids of [R, 1]) where err [n, R] is least; ties go to the first."""
    best = err.argmin(0)[None, :, None]
    scale = torch.stack([sc for sc, _ in cands]).take_along_dim(best, 0)[0]
    zero = None if cands[0][1] is None else torch.stack([z for _, z in cands]).take_along_dim(best, 0)[0]
    return scale, zero


def gptq_output_clip(w: torch.Tensor, u: torch.Tensor, dead: torch.Tensor, h: torch.Tensor, bits: int,
                     grid: str = "symmetric") -> torch.Tensor:
    """GPTQ-rounded rows w [R, K] (columns in ``u``'s order), each row on the grid of ``weight_grid_candidates``
    whose rounding leaves the least output error (w_q − w) H (w_q − w)ᵀ; h [K, K] in the same column order.
    Rows are independent under GPTQ, so every candidate is rounded in one batch of n · R rows."""
    cands = weight_grid_candidates(w, bits, grid)
    n, r = len(cands), w.shape[0]
    scale = torch.cat([sc for sc, _ in cands])
    zero = None if cands[0][1] is None else torch.cat([z for _, z in cands])
    rep = w.float().repeat(n, 1)
    q = gptq(rep, u, dead, scale, bits, zero)
    d = q - rep
    err = ((d @ h) * d).sum(1).reshape(n, r)
    return q.reshape(n, r, -1)[err.argmin(0), torch.arange(r)]


def quantize_weight(w: torch.Tensor, bits: int, factor: tuple | None = None, grid: str = "symmetric") -> torch.Tensor:
    """Fake-quantized copy of a weight [C_out, ...] at ``bits`` (per output channel, on ``weight_grid``'s grid).

    factor: None rounds to nearest; (U [cg, K, K], dead [cg, K], perm [cg, K] or None, H [cg, K, K] or None)
    from ``rounding.hessian_factor`` rounds by GPTQ, conv group by conv group (columns in perm's order), on
    the same per-channel grid, or, where H is given (``gptq-act-clip``), on each channel's grid of least output error.
    """
    if is_fp(bits):
        return w.detach().clone()
    flat = w.detach().float().reshape(w.shape[0], -1)
    if factor is None:
        scale, zero = weight_grid(flat, bits, grid)
        return round_to_grid(flat, scale, bits, zero).reshape(w.shape)
    u, dead, perm, h = factor
    rows = flat.shape[0] // u.shape[0]
    q = []
    for k in range(u.shape[0]):
        wk = flat[k * rows:(k + 1) * rows]
        if perm is not None:
            wk = wk[:, perm[k]]
        if h is not None and bits > 1:
            qk = gptq_output_clip(wk, u[k], dead[k], h[k], bits, grid)
        else:
            scale, zero = weight_grid(flat[k * rows:(k + 1) * rows], bits, grid)
            qk = gptq(wk, u[k], dead[k], scale, bits, zero)
        q.append(qk if perm is None else qk[:, torch.argsort(perm[k])])
    return torch.cat(q).reshape(w.shape)


def fake_quant_activation(x: torch.Tensor, lo: float, hi: float, bits: int) -> torch.Tensor:
    """Asymmetric uniform fake quantization of x onto 2^bits levels spanning [lo, hi]."""
    levels = 2 ** bits - 1
    scale = max(hi - lo, 1e-8) / levels
    zero = round(-lo / scale)
    # clamp(round(x/s) + z, 0, L) - z == clamp(round(x/s), -z, L - z): the zero point folds into the
    # clamp bounds. One allocation, three in-place ops; a multiply, because division costs several
    # times more on CPU (this op runs on every activation of every quantized layer).
    q = x * (1.0 / scale)
    return q.round_().clamp_(-zero, levels - zero).mul_(scale)


def activation_range(values: torch.Tensor, bits: int) -> tuple[float, float]:
    """[lo, hi] for one activation tensor at ``bits``: the min/max range shrunk by the ratio in
    ACT_CLIP_GRID that minimises the quantization MSE on (a fixed subsample of) ``values``."""
    v = values.detach().float().flatten()
    lo0, hi0 = float(v.min()), float(v.max())
    if is_fp(bits) or hi0 - lo0 < 1e-12:
        return lo0, hi0
    if v.numel() > ACT_SEARCH_SAMPLES:
        idx = torch.linspace(0, v.numel() - 1, ACT_SEARCH_SAMPLES).long()  # deterministic subsample
        v = v[idx]
    best, best_err = (lo0, hi0), float("inf")
    for ratio in ACT_CLIP_GRID[::-1]:
        lo, hi = lo0 * float(ratio), hi0 * float(ratio)
        err = float((fake_quant_activation(v, lo, hi, bits) - v).pow(2).mean())
        if err < best_err:
            best, best_err = (lo, hi), err
    return best


def token_elements(layer: nn.Module) -> int:
    """Elements of one token of the layer's input: a Linear's in_features; a patchify Conv2d's (stride equal
    to its kernel, no padding, e.g. a DiT's patch embedding) C_in x kh x kw; 0 for any other conv (its input
    has no tokens: it keeps a per-tensor range)."""
    if isinstance(layer, nn.Linear):
        return int(layer.in_features)
    if (isinstance(layer, nn.Conv2d) and tuple(layer.stride) == tuple(layer.kernel_size) and
            tuple(layer.padding) == (0, 0) and tuple(layer.dilation) == (1, 1) and layer.groups == 1):
        return int(layer.in_channels * layer.kernel_size[0] * layer.kernel_size[1])
    return 0


def token_layers(unet: nn.Module, names: list[str]) -> dict[str, int]:
    """{layer: token elements} of the named layers that take per-token activation ranges (``token_elements``)."""
    out = {}
    for n in names:
        k = token_elements(unet.get_submodule(n))
        if k:
            out[n] = k
    return out


def sample_token_layers(names: list[str], a_numel) -> dict[str, int]:
    """{layer: token elements} under ``act_granularity="sample"``: every named layer, one token per sample
    (a_numel: one sample's input elements per layer, in the order of ``names``)."""
    return {n: int(k) for n, k in zip(names, a_numel)}


def _token_view(x: torch.Tensor, patch: tuple[int, int] | None, elements: int | None = None) -> torch.Tensor:
    """x as [..., tokens, token elements]: a Linear input's last dim, a conv input's p x q patches, or (elements
    given) consecutive runs of that many elements, e.g. one sample's whole input."""
    if elements is not None and patch is None:
        if x.numel() % elements:
            raise ValueError(f"an input of shape {tuple(x.shape)} does not split into tokens of {elements} elements: "
                             "the profile was measured at another input size; profile the model at this one.")
        return x.reshape(-1, elements)
    if patch is None:
        return x
    n, c, h, w = x.shape
    p, q = patch
    return x.reshape(n, c, h // p, p, w // q, q).permute(0, 2, 4, 1, 3, 5).reshape(n, (h // p) * (w // q), c * p * q)


def fake_quant_tokens(x: torch.Tensor, ratio: float, bits: int, patch: tuple[int, int] | None = None,
                      elements: int | None = None) -> torch.Tensor:
    """Per-token dynamic asymmetric fake quantization: each token (row of the last dim; p x q patch of a conv
    input [N, C, H, W] when ``patch`` is given; run of ``elements`` elements when that is given) onto 2^bits
    levels spanning its own [min, max] x ratio."""
    per_sample = elements is not None and patch is None and x.ndim > 1 and x[0].numel() == elements
    # one token per sample: reduce over each sample's own dims, and quantize x where it lies; a reshape would
    # copy a channels_last conv input and hand the next conv a layout to convert back (the values are the same)
    v = x if per_sample else _token_view(x, patch, elements)
    dims = tuple(range(1, x.ndim)) if per_sample else -1
    levels = 2 ** bits - 1
    lo = v.amin(dims, keepdim=True) * ratio
    hi = v.amax(dims, keepdim=True) * ratio
    scale = (hi - lo).clamp_min(1e-8) / levels
    zero = torch.round(-lo / scale)
    q = (v / scale).round_()
    # clamp(q, -zero, levels - zero), in place: clamp_ with tensor bounds is several times slower on CPU
    q = torch.minimum(torch.maximum(q, -zero, out=q), levels - zero, out=q).mul_(scale)
    if per_sample:
        return q
    if patch is None:
        return q.reshape(x.shape)
    n, c, h, w = x.shape
    p, qq = patch
    return q.reshape(n, h // p, w // qq, c, p, qq).permute(0, 3, 1, 4, 2, 5).reshape(x.shape)


def token_clip_ratio(values: torch.Tensor, bits: int, patch: tuple[int, int] | None = None,
                     elements: int | None = None) -> float:
    """The clip ratio of ACT_CLIP_GRID that minimises the per-token quantization MSE on (a fixed subsample
    of the tokens of) ``values``: the per-token counterpart of ``activation_range``."""
    v = _token_view(values.detach().float(), patch, elements)
    v = v.reshape(-1, v.shape[-1])
    rows = max(1, ACT_SEARCH_SAMPLES // v.shape[1])
    if v.shape[0] > rows:
        v = v[torch.linspace(0, v.shape[0] - 1, rows).long()]  # deterministic subsample of whole tokens
    if is_fp(bits):
        return 1.0
    best, best_err = 1.0, float("inf")
    for ratio in ACT_CLIP_GRID[::-1]:
        err = float((fake_quant_tokens(v, float(ratio), bits) - v).pow(2).mean())
        if err < best_err:
            best, best_err = float(ratio), err
    return best


def fake_quant_split(x: torch.Tensor, split: int, parts, bits: int) -> torch.Tensor:
    """x [N, C, ...] fake-quantized with range parts[0] = (lo, hi) on channels [:split] and parts[1]
    on channels [split:]: a concatenated input whose parts have their own ranges."""
    (lo0, hi0), (lo1, hi1) = parts
    return torch.cat([fake_quant_activation(x[:, :split], float(lo0), float(hi0), bits),
                      fake_quant_activation(x[:, split:], float(lo1), float(hi1), bits)], 1)


def concat_splits(unet: nn.Module) -> dict[str, int]:
    """{layer name: split channel} for the layers whose input is torch.cat([upsampled path, skip], 1).

    In a diffusers UNet up block, resnet j concatenates its input hidden state with a skip before
    norm1 -> conv1, and its conv_shortcut takes the raw concatenation. The hidden state has the
    output channels of resnet j-1, or, for j = 0, those of the previous up block (the mid block,
    block_out_channels[-1], for the first one): the split point. Models without such blocks get {}.
    """
    up_blocks = getattr(unet, "up_blocks", None)
    if up_blocks is None:
        return {}
    out = {}
    prev = unet.config.block_out_channels[-1]
    for i, block in enumerate(up_blocks):
        if type(block).__name__ not in CONCAT_UP_BLOCKS:
            prev = block.resnets[-1].out_channels if hasattr(block, "resnets") else prev
            continue
        for j, resnet in enumerate(block.resnets):
            hidden = prev if j == 0 else block.resnets[j - 1].out_channels
            if not 0 < hidden < resnet.in_channels:
                raise ValueError(f"up_blocks.{i}.resnets.{j}: split {hidden} does not fit its {resnet.in_channels} "
                                 "input channels; this up block does not concatenate as diffusers' UpBlock2D does.")
            for leaf in ("conv1", "conv_shortcut"):
                if isinstance(getattr(resnet, leaf, None), nn.Conv2d):
                    out[f"up_blocks.{i}.resnets.{j}.{leaf}"] = hidden
        prev = block.resnets[-1].out_channels
    return out


CONCAT_UP_BLOCKS = ("UpBlock2D", "AttnUpBlock2D", "CrossAttnUpBlock2D")


class GroupState:
    """The timestep group of the current forward pass, shared by every wrapper of one model."""

    def __init__(self):
        self.group = 0


@dataclass
class LayerCalibration:
    """What one layer's quantizers learn from the calibration inputs, and the caches built on it.

    factor: GPTQ's (U [cg, K, K], dead [cg, K], perm [cg, K] or None), a list of them, one per timestep
    group (per-group Hessians), or None (round to nearest); in_mean: E[x] columns per group [G, cg, K]
    or None (no bias correction). wq {(bits, copy, grid): weight}, bq {(bits, g, grid): bias}: every quantized
    weight and corrected bias is computed once and kept here, shared by every wrapper built on the
    same calibration (``QuantizedUNet.setup`` memoises it); ``copy`` is the group with per-group
    Hessians, else 0 (one weight for all groups).
    """

    factor: tuple | list | None = None
    in_mean: torch.Tensor | None = None
    wq: dict = field(default_factory=dict)
    bq: dict = field(default_factory=dict)

    def copy_of(self, g: int) -> int:
        """Which weight copy group g uses: its own with per-group Hessians, else the one shared copy 0."""
        return g if isinstance(self.factor, list) else 0

    def factor_of(self, g: int) -> tuple | None:
        """The GPTQ factor group g's weight is rounded with (None: round to nearest)."""
        return self.factor[g] if isinstance(self.factor, list) else self.factor


class QuantLayer(nn.Module):
    """Fake-quant stand-in for one nn.Conv2d / nn.Linear, configured per timestep group.

    It holds the original weight and bias (shared, not copied) and has no child modules.
    ``w_bits[g]``, ``a_bits[g]``: bits in group g (FP_BITS = unquantized); ``a_range[g]`` = (lo, hi).
    ``a_split`` > 0: the input is a concatenation split at that channel, quantized with one range
    per part, ``a_range_parts[g]`` = ((lo, hi), (lo, hi)). ``calib``: rounding and bias correction
    (``LayerCalibration``); quantized weights are computed once per bit width and cached there,
    corrected biases once per (bit width, group).
    """

    def __init__(self, layer: nn.Module, name: str, num_groups: int, state: GroupState):
        super().__init__()
        if not isinstance(layer, QUANTIZABLE):
            raise TypeError(f"{name} is a {type(layer).__name__}; only Conv2d and Linear are quantizable.")
        self.name = name
        self.is_conv = isinstance(layer, nn.Conv2d)
        self.weight = layer.weight
        self.bias = layer.bias
        if self.is_conv:
            if layer.padding_mode != "zeros":
                raise ValueError(f"{name}: padding_mode={layer.padding_mode!r} is not supported; use 'zeros'.")
            self.conv_args = dict(stride=layer.stride, padding=layer.padding, dilation=layer.dilation,
                                  groups=layer.groups)
        self.state = state
        self.w_bits = [FP_BITS] * num_groups
        self.a_bits = [FP_BITS] * num_groups
        self.a_range = [(0.0, 0.0)] * num_groups
        self.a_split = 0
        self.a_range_parts = [((0.0, 0.0), (0.0, 0.0))] * num_groups
        # a_token > 0: per-token dynamic ranges (tokens of that many elements); a_range[g] then holds the clip
        # ratio (twice) instead of (lo, hi)
        self.a_token = 0
        self.patch = tuple(layer.kernel_size) if self.is_conv else None
        self.a_sample = False  # a_token set by act_granularity="sample": the token is the whole sample
        self.weight_grid = "symmetric"
        self.calib = LayerCalibration()

    def quantized_weight(self, bits: int, g: int = 0) -> torch.Tensor:
        """The weight at ``bits`` that group g uses (the same copy for every group unless the Hessian is per group)."""
        if is_fp(bits):
            return self.weight
        key = (bits, self.calib.copy_of(g), self.weight_grid)
        w = self.calib.wq.get(key)
        if w is None:
            w = quantize_weight(self.weight, bits, self.calib.factor_of(g), self.weight_grid).to(self.weight.dtype)
            w = self.calib.wq[key] = fast_layout_like(w, self.weight)
        return w

    def quantized_bias(self, bits: int, g: int) -> torch.Tensor | None:
        """The bias to use with weights at ``bits`` in group g: with bias correction, the FP bias (zero
        if the layer has none) minus the mean output shift of the quantized weight on g's inputs."""
        if is_fp(bits) or self.calib.in_mean is None:
            return self.bias
        b = self.calib.bq.get((bits, g, self.weight_grid))
        if b is None:
            shift = output_shift(self.quantized_weight(bits, g) - self.weight, self.calib.in_mean[g])
            base = self.bias.double() if self.bias is not None else 0.0
            b = self.calib.bq[(bits, g, self.weight_grid)] = (base - shift).to(self.weight.dtype)
        return b

    @property
    def token_shape(self) -> dict:
        """How ``fake_quant_tokens`` cuts this layer's input into tokens: one per sample, or its own tokens (a
        Linear input's last dim, a patchify conv's patches)."""
        return {"elements": self.a_token} if self.a_sample else {"patch": self.patch}

    def quantize_input(self, x: torch.Tensor, bits: int, g: int) -> torch.Tensor:
        """x fake-quantized at ``bits`` with group g's range, one range per concatenated part, or per token."""
        return self.quantize_input_with(x, bits, self.a_range[g], self.a_range_parts[g])

    def quantize_input_with(self, x: torch.Tensor, bits: int, rng, parts) -> torch.Tensor:
        """x fake-quantized at ``bits`` with range rng = (lo, hi) (per-token layers: (ratio, ratio)), or
        parts = ((lo, hi), (lo, hi)) for a split input."""
        if self.a_token:
            return fake_quant_tokens(x, float(rng[1]), bits, **self.token_shape)
        if self.a_split:
            return fake_quant_split(x, self.a_split, parts, bits)
        return fake_quant_activation(x, float(rng[0]), float(rng[1]), bits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.state.group
        ab = self.a_bits[g]
        if not is_fp(ab):
            x = self.quantize_input(x, ab, g)
        wb = self.w_bits[g]
        return self.op(x, self.quantized_weight(wb, g), self.quantized_bias(wb, g))

    def op(self, x: torch.Tensor, w: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """The wrapped layer's conv or linear with weight ``w``."""
        if self.is_conv:
            return F.conv2d(x, w, bias, **self.conv_args)
        return F.linear(x, w, bias)

    def extra_repr(self) -> str:
        return f"{self.name}, w_bits={self.w_bits}, a_bits={self.a_bits}"


class QuantizedUNet(nn.Module):
    """A copy of a UNet whose quantizable layers are QuantLayers, switched by the timestep group.

    ``forward(sample, timestep)`` maps the timestep to its group before running the UNet; a batch
    that mixes groups is split by group, so every sample uses its own group's configuration.
    """

    def __init__(self, unet: nn.Module, groups: TimestepGroups, layer_names: list[str] | None = None):
        super().__init__()
        self.groups = groups
        self.state = GroupState()
        self.inner = copy.deepcopy(unet)
        self.layers: dict[str, QuantLayer] = {}
        wanted = None if layer_names is None else set(layer_names)
        for name, module in list(self.inner.named_modules()):
            if isinstance(module, QUANTIZABLE) and (wanted is None or name in wanted):
                # The wrapper takes the FP model's own weight tensors: one copy of the weights in memory.
                ql = QuantLayer(unet.get_submodule(name), name, groups.num_groups, self.state)
                parent_name, _, child = name.rpartition(".")
                parent = self.inner.get_submodule(parent_name) if parent_name else self.inner
                setattr(parent, child, ql)
                self.layers[name] = ql
        if wanted is not None and wanted - set(self.layers):
            raise ValueError(f"unknown layers {sorted(wanted - set(self.layers))[:5]}: not Conv2d/Linear of this model.")
        object.__setattr__(self, "fp_unet", unet)  # not a submodule: fingerprints and config come from it

    @property
    def config(self):
        return self.inner.config

    def forward(self, sample: torch.Tensor, timestep, **kw):
        t = torch.as_tensor(timestep, device=sample.device)
        if t.ndim == 0:
            t = t.expand(sample.shape[0])
        g = self.groups.group_of(t)
        if bool((g == g[0]).all()):
            self.state.group = int(g[0])
            return self.inner(sample, t, **kw)
        out = torch.empty_like(sample)
        for gi in torch.unique(g).tolist():
            sel = (g == gi).to(sample.device)
            self.state.group = gi
            # conditioning (class_labels, encoder_hidden_states) is per sample: split it with the batch
            kw_g = {k: v[sel] if torch.is_tensor(v) and v.ndim and v.shape[0] == sample.shape[0] else v
                    for k, v in kw.items()}
            res = self.inner(sample[sel], t[sel], **kw_g).sample
            if out.shape[1] != res.shape[1]:  # learned-sigma models return more channels than they take
                out = torch.empty((sample.shape[0], *res.shape[1:]), dtype=res.dtype, device=res.device)
            out[sel] = res
        return _Output(out)

    def configure(self, w_bits: np.ndarray, a_bits: np.ndarray, a_range: np.ndarray,
                  names: list[str], a_range_parts: np.ndarray | None = None) -> None:
        """Set bits per (group, layer) and activation ranges [G, L, 2] for the named layers;
        a_range_parts [G, L, 2 parts, 2]: the ranges of layers whose input is split (``setup``)."""
        for li, name in enumerate(names):
            ql = self.layers[name]
            ql.w_bits = [int(b) for b in w_bits[:, li]]
            ql.a_bits = [int(b) for b in a_bits[:, li]]
            ql.a_range = [(float(a_range[g, li, 0]), float(a_range[g, li, 1])) for g in range(a_bits.shape[0])]
            if a_range_parts is not None:
                ql.a_range_parts = [tuple((float(lo), float(hi)) for lo, hi in a_range_parts[g, li])
                                    for g in range(a_bits.shape[0])]

    def setup(self, calib_x, calib_t, rounding: str = "rtn", bias_correction: bool = False,
              a_split: dict[str, int] | None = None, call=None, a_token: dict[str, int] | None = None,
              weight_grid: str = "symmetric", token_samples: bool = False) -> None:
        """Give the quantizers what they learn beyond bits and ranges.

        rounding 'gptq' / 'gptq-act': each layer's Hessian factor; bias_correction: its mean input per group. Both
        come from the FP model on the calibration inputs x [G, N, C, H, W], t [G, N] (``rounding.
        calibration_stats``). The result, with the quantized weights and biases later cached in it, is
        memoised for the last (model, calibration, settings), so a profile and the quantize() calls
        after it compute each weight once. a_split: {layer: split channel} (``concat_splits``).
        call(x, t): how the FP model runs on the calibration inputs (conditioning), default fp_unet(x, t).
        a_token: {layer: token elements} of the layers with per-token activation ranges (``token_layers``);
        token_samples: each of those tokens is a whole sample's input (``sample_token_layers``).
        weight_grid: the per-channel weight grid of every layer (``weight_grid``).
        """
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding={rounding!r}: choose one of {ROUNDINGS}.")
        check_weight_grid(weight_grid)
        for ql in self.layers.values():
            ql.weight_grid = weight_grid
        for name, split in (a_split or {}).items():
            if name in self.layers:
                self.layers[name].a_split = int(split)
        for name, k in (a_token or {}).items():
            if name in self.layers:
                if self.layers[name].a_split:
                    raise ValueError(f"{name}: a split input cannot also take per-token ranges.")
                self.layers[name].a_token = int(k)
                self.layers[name].a_sample = bool(token_samples)
        if not needs_calibration(dict(rounding=rounding, bias_correction=bias_correction)):
            return
        calib = _layer_calibration(self.fp_unet, list(self.layers), calib_x, calib_t, rounding, bias_correction, call)
        for name, ql in self.layers.items():
            ql.calib = calib[name]


_CALIB_MEMO: dict = {}  # the last setup's {key: {layer: LayerCalibration}}


def _layer_calibration(unet: nn.Module, names: list[str], calib_x, calib_t, rounding: str,
                       bias_correction: bool, call=None) -> dict[str, LayerCalibration]:
    """{layer: LayerCalibration} for ``QuantizedUNet.setup``, memoised on the model's weights, the
    calibration inputs and the settings (one entry: the app re-quantizes with one profile at a time)."""
    from .models import fingerprint

    calib_x, calib_t = torch.as_tensor(calib_x), torch.as_tensor(calib_t)
    key = (fingerprint(unet), tuple(names), rounding, bool(bias_correction), DAMP, str(next(unet.parameters()).device),
           hashlib.sha256(calib_x.cpu().numpy().tobytes() + calib_t.cpu().numpy().tobytes()).hexdigest())
    if key not in _CALIB_MEMO:
        per_group = per_group_hessian(rounding)
        stats = calibration_stats(unet, names, calib_x, calib_t, hessian=uses_hessian(rounding), call=call,
                                  per_group=per_group)
        _CALIB_MEMO.clear()

        def factor(st):
            if not uses_hessian(rounding):
                return None
            kw = dict(act_order=uses_act_order(rounding), keep_h=uses_output_clip(rounding))
            if per_group:
                return [hessian_factor(st.hessian(g), **kw) for g in range(len(st.rows))]
            return hessian_factor(st.hessian(), **kw)

        _CALIB_MEMO[key] = {n: LayerCalibration(factor=factor(st), in_mean=st.mean() if bias_correction else None)
                            for n, st in stats.items()}
    return _CALIB_MEMO[key]


@dataclass
class _Output:
    sample: torch.Tensor


def quantize(model: DiffusionModel, profile=None, allocation=None) -> DiffusionModel:
    """A fake-quantized DiffusionModel that follows ``allocation`` (bits and activation ranges per
    group and layer). The FP model is left untouched; its weights are shared.

    ``quantize(model, profile, allocation)`` checks the allocation against the model and the profile.
    The allocation carries its bits and activation ranges (split inputs too), so for round-to-nearest
    weights without bias correction ``profile`` may be None (``quantize(model, allocation=alloc)``;
    checked against the model only). GPTQ weights and bias corrections are rebuilt from the
    profile's calibration inputs, so those allocations need their profile.
    """
    if allocation is None:
        raise ValueError("quantize needs an allocation: dadq.quantize(model, profile, allocation), with one from "
                         "dadq.allocate or Allocation.load.")
    allocation.check(model=model, profile=profile)
    qunet = QuantizedUNet(model.unet, allocation.groups, allocation.layer_names)
    if profile is not None:  # GPTQ weights and bias corrections come from the profile's calibration inputs
        profile.setup_quantizers(qunet, model)
    else:
        s = allocation.settings
        if needs_calibration(s):
            raise ValueError(f"this allocation comes from a profile with rounding={s.get('rounding')!r}, bias_correction="
                             f"{s.get('bias_correction')}: its weights are rebuilt from that profile's calibration "
                             "inputs; call dadq.quantize(model, profile, allocation).")
        granularity = s.get("act_granularity", "tensor")
        tokens = (token_layers(model.unet, allocation.layer_names) if granularity == "token" else
                  sample_token_layers(allocation.layer_names, allocation.a_numel) if granularity == "sample" else None)
        qunet.setup(None, None, a_split=allocation.split_layers(), a_token=tokens,
                    weight_grid=grid_of(s), token_samples=granularity == "sample")
    qunet.configure(allocation.w_bits, allocation.a_bits, allocation.act_range, allocation.layer_names,
                    allocation.act_range_parts)
    qunet.eval()
    # the same conditioning (null class, default guidance, encoder_hidden_states) as the FP model
    return model.with_net(qunet, source=f"{model.source} [quantized]", info={"allocation": allocation.summary()})
