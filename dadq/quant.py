"""Quantizers, the fake-quant layer wrapper, and ``quantize(model, profile, allocation)``.

Weights: symmetric, per output channel, narrow range (levels -q..q with q = 2^(b-1) - 1); the clip
scale of each channel minimises that channel's weight MSE over ``WEIGHT_CLIP_GRID``. 1 bit is
sign(w) x mean|w| per channel, since a symmetric 1-bit grid would hold only zero.
Activations: asymmetric, per tensor, 2^b levels over a range [lo, hi] per (layer, group, bits),
chosen by an MSE search over shrunk min/max ranges (``activation_range``).
Bit widths 1..16 are quantized; FP_BITS (32) means full precision: the layer runs unquantized.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .bitwidths import FP_BITS, is_fp
from .groups import TimestepGroups
from .models import QUANTIZABLE, DiffusionModel

WEIGHT_CLIP_GRID = np.linspace(0.30, 1.0, 36)
ACT_CLIP_GRID = np.linspace(0.30, 1.0, 36)
ACT_SEARCH_SAMPLES = 1 << 15


def quantize_weight(w: torch.Tensor, bits: int) -> torch.Tensor:
    """Fake-quantized copy of a weight [C_out, ...] at ``bits`` (per output channel)."""
    if is_fp(bits):
        return w.detach().clone()
    w = w.detach().float()
    flat = w.reshape(w.shape[0], -1)
    if bits == 1:
        scale = flat.abs().mean(1, keepdim=True)
        return (torch.sign(flat) * scale).reshape(w.shape)
    qmax = 2 ** (bits - 1) - 1
    maxabs = flat.abs().amax(1, keepdim=True).clamp_min(1e-12)
    best_err = torch.full((flat.shape[0], 1), float("inf"), device=flat.device)
    best = flat.clone()
    for ratio in WEIGHT_CLIP_GRID:
        scale = maxabs * float(ratio) / qmax
        deq = torch.clamp(torch.round(flat / scale), -qmax, qmax) * scale
        err = (deq - flat).pow(2).mean(1, keepdim=True)
        better = err < best_err
        best_err = torch.where(better, err, best_err)
        best = torch.where(better, deq, best)
    return best.reshape(w.shape)


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


class GroupState:
    """The timestep group of the current forward pass, shared by every wrapper of one model."""

    def __init__(self):
        self.group = 0


class QuantLayer(nn.Module):
    """Fake-quant stand-in for one nn.Conv2d / nn.Linear, configured per timestep group.

    It holds the original weight and bias (shared, not copied) and has no child modules.
    ``w_bits[g]``, ``a_bits[g]``: bits in group g (FP_BITS = unquantized); ``a_range[g]`` = (lo, hi).
    Quantized weights are computed once per bit width and cached in ``_wq``.
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
        self._wq: dict[int, torch.Tensor] = {}

    def quantized_weight(self, bits: int) -> torch.Tensor:
        if is_fp(bits):
            return self.weight
        w = self._wq.get(bits)
        if w is None:
            w = self._wq[bits] = quantize_weight(self.weight, bits).to(self.weight.dtype)
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.state.group
        ab = self.a_bits[g]
        if not is_fp(ab):
            lo, hi = self.a_range[g]
            x = fake_quant_activation(x, lo, hi, ab)
        return self.op(x, self.quantized_weight(self.w_bits[g]), self.bias)

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
                  names: list[str]) -> None:
        """Set bits per (group, layer) and activation ranges [G, L, 2] for the named layers."""
        for li, name in enumerate(names):
            ql = self.layers[name]
            ql.w_bits = [int(b) for b in w_bits[:, li]]
            ql.a_bits = [int(b) for b in a_bits[:, li]]
            ql.a_range = [(float(a_range[g, li, 0]), float(a_range[g, li, 1])) for g in range(a_bits.shape[0])]


@dataclass
class _Output:
    sample: torch.Tensor


def quantize(model: DiffusionModel, profile=None, allocation=None) -> DiffusionModel:
    """A fake-quantized DiffusionModel that follows ``allocation`` (bits and activation ranges per
    group and layer). The FP model is left untouched; its weights are shared.

    ``quantize(model, profile, allocation)`` checks the allocation against the model and the profile.
    The allocation carries all that quantizing needs, so ``profile`` may be None
    (``quantize(model, allocation=alloc)``): then it is checked against the model only.
    """
    if allocation is None:
        raise ValueError("quantize needs an allocation: dadq.quantize(model, profile, allocation), with one from "
                         "dadq.allocate or Allocation.load.")
    allocation.check(model=model, profile=profile)
    qunet = QuantizedUNet(model.unet, allocation.groups, allocation.layer_names)
    qunet.configure(allocation.w_bits, allocation.a_bits, allocation.act_range, allocation.layer_names)
    qunet.eval()
    # the same conditioning (null class, default guidance, encoder_hidden_states) as the FP model
    return model.with_net(qunet, source=f"{model.source} [quantized]", info={"allocation": allocation.summary()})
