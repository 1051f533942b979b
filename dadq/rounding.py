"""Weight rounding onto the per-channel grid: round to nearest (``rtn``) or GPTQ (``gptq``).

Both use the same per-output-channel grid (``dadq.quant.weight_grid``, fixed before any rounding).
GPTQ (Frantar et al. 2022) rounds one input column at a time (left to right, or with ``gptq-act`` in
order of falling Hessian diagonal) and spreads each column's rounding
error over the columns not yet rounded, weighted by the inverse of the layer's input Hessian
H = E[x xᵀ], so the layer *output* error on the calibration inputs is what gets minimised, not the
weight error. A Conv2d is a matmul over its im2col columns (C_in/groups · kh · kw of them, per conv
group), so the same algorithm serves Conv2d and Linear.

The Hessian is pooled over all timestep groups' calibration inputs (``gptq``, ``gptq-act``): one GPTQ
weight per (layer, bits), so shared and per-group weight storage (DESIGN §3) count the same copies as
with rtn. The ``-group`` roundings take one Hessian per timestep group instead: the weight of group g
is rounded for the inputs group g sees, so every quantized group holds its own copy, and the stored
size counts G copies (``Allocation.stored_weight_bits``). Measured on the default model
(experiments/results/rounding_ablation_hessian.json; held-out layer output MSE, geometric mean over 8
layers at 3 and 4 bits): pooled GPTQ 0.26x RTN's, per-group Hessians 0.21x, i.e. 0.82x pooled.
In images the pooled Hessian is better: FID 1-8% lower on 5 of 6 settings (docs/results.md, "One Hessian
per group"), likely because 16 samples per group estimate each group's Hessian less well than 160 pooled.

``gptq-act-clip`` keeps the grid's form but not its choice: the clip ratio that sets each channel's
scale is the one of WEIGHT_CLIP_GRID whose GPTQ-rounded weight leaves the least output error
(w_q − w) H (w_q − w)ᵀ on the calibration inputs, where the other roundings pick it by round-to-nearest
weight MSE before rounding. GPTQ moves weights off their nearest grid point, so the ratio best for
rounding to nearest is not the best for GPTQ. Measured on the default model (held-out layer output
MSE, geometric mean over all 64 layers, 8 samples per group): 0.77x gptq-act's at 3 bits, 0.81x at 4.

Bias correction folds a quantized layer's mean output shift E[(W_q − W) x] into its bias; by
linearity that is (W_q − W) applied to the mean input column, kept per timestep group.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# gptq-act: GPTQ with activation order (columns by falling diag H); -group: one Hessian per timestep group;
# -clip: each channel's clip ratio chosen by the layer's output error after GPTQ, not by its weight error
ROUNDINGS = ("rtn", "gptq", "gptq-act", "gptq-group", "gptq-act-group", "gptq-act-clip")
DAMP = 0.01  # dampening: fraction of the mean Hessian diagonal added to the diagonal (GPTQ's default)
BLOCK = 128  # GPTQ lazy-batch width: columns updated together before the trailing columns are touched


def uses_hessian(rounding: str) -> bool:
    """Whether a rounding needs each layer's input Hessian (the GPTQ family)."""
    return rounding != "rtn"


def uses_act_order(rounding: str) -> bool:
    """Whether a rounding takes the columns in activation order (``hessian_factor(act_order=True)``)."""
    return rounding in ("gptq-act", "gptq-act-group", "gptq-act-clip")


def uses_output_clip(rounding: str) -> bool:
    """Whether a rounding picks each output channel's clip ratio by the layer's output error on the
    calibration inputs after GPTQ at every candidate ratio (``hessian_factor(keep_h=True)``), rather than
    by round-to-nearest weight MSE before it."""
    return rounding.endswith("-clip")


def per_group_hessian(rounding: str) -> bool:
    """Whether a rounding takes one Hessian per timestep group, so each group has its own weight copy."""
    return rounding.endswith("-group")


def describe(rounding: str) -> str:
    """The words a profile header (``weight_quantizer``) gives a rounding."""
    if not uses_hessian(rounding):
        return "round to nearest"
    order = "columns by falling Hessian diagonal" if uses_act_order(rounding) else "no reordering"
    source = ("one Hessian per timestep group, from that group's calibration inputs: one weight copy per group"
              if per_group_hessian(rounding) else "Hessian pooled over all groups' calibration inputs")
    clip = (", each channel's clip ratio chosen by the layer's output error on the calibration inputs after GPTQ"
            if uses_output_clip(rounding) else "")
    return f"GPTQ rounding ({source}, dampening {DAMP} of its mean diagonal, {order}{clip})"


def needs_calibration(settings: dict) -> bool:
    """Whether a profile's (or allocation's) quantized weights are rebuilt from calibration inputs: GPTQ
    rounding or bias correction. ``settings``: ``Profile.settings()`` / ``Allocation.settings``."""
    return settings.get("rounding", "rtn") != "rtn" or bool(settings.get("bias_correction"))


def round_to_grid(w: torch.Tensor, scale: torch.Tensor, bits: int, zero: torch.Tensor | None = None) -> torch.Tensor:
    """Nearest point of the per-row grid: zero None, the symmetric narrow grid {-q..q} · scale
    (q = 2^(bits-1) - 1; at 1 bit sign(w) · scale, since that grid would hold only zero); else the
    asymmetric grid (k - zero) · scale, k = 0..2^bits - 1. w [R, K], scale and zero [R, 1] -> [R, K]."""
    if zero is not None:
        return (torch.clamp(torch.round(w / scale) + zero, 0, 2 ** bits - 1) - zero) * scale
    if bits == 1:
        return torch.sign(w) * scale
    qmax = 2 ** (bits - 1) - 1
    return torch.clamp(torch.round(w / scale), -qmax, qmax) * scale


def layer_columns(x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """The rows a layer multiplies its weight with: [conv groups, R, K].

    Linear: x [..., K] -> [1, R, K], R = all leading elements. Conv2d: im2col of x [N, C_in, H, W]
    honouring kernel, stride, padding and dilation; R = N · output positions, K = C_in/groups · kh · kw
    in weight.reshape(C_out, -1) order, one slice per conv group, so that conv(x, W) at output
    channel o of conv group k is columns[k] @ W.reshape(C_out, -1)[o].
    """
    if isinstance(layer, nn.Linear):
        return x.reshape(1, -1, x.shape[-1])
    if not isinstance(layer, nn.Conv2d) or isinstance(layer.padding, str) or layer.padding_mode != "zeros":
        raise ValueError(f"layer_columns: {layer} is not a Linear or a zero-padded Conv2d with numeric padding.")
    cols = F.unfold(x, layer.kernel_size, dilation=layer.dilation, padding=layer.padding, stride=layer.stride)
    n, ck, positions = cols.shape
    g = layer.groups
    return cols.transpose(1, 2).reshape(n * positions, g, ck // g).transpose(0, 1)


@dataclass
class InputStats:
    """Sums over one layer's calibration input columns (``layer_columns``).

    col_sum float64 [G, cg, K] and rows int64 [G]: per timestep group (bias correction);
    xtx float64 [1, cg, K, K] (Σ x xᵀ over all groups: the pooled Hessian), [G, cg, K, K] (per group) or None.
    """

    col_sum: torch.Tensor
    rows: torch.Tensor
    xtx: torch.Tensor | None
    per_group: bool = False

    def add(self, cols: torch.Tensor, g: int) -> None:
        self.col_sum[g] += cols.sum(1, dtype=torch.float64)
        self.rows[g] += cols.shape[1]
        if self.xtx is not None:
            self.xtx[g if self.per_group else 0] += (cols.transpose(1, 2) @ cols).double()

    def hessian(self, g: int | None = None) -> torch.Tensor:
        """H = E[x xᵀ], float64 [cg, K, K]: over all calibration rows, or (per-group sums) over group g's."""
        if g is None:
            return self.xtx.sum(0) / self.rows.sum()
        if not self.per_group:
            raise ValueError("these statistics pool the Hessian over groups; gather them with per_group=True.")
        return self.xtx[g] / self.rows[g].clamp_min(1)

    def mean(self) -> torch.Tensor:
        """E[x] per group, float64 [G, cg, K]."""
        return self.col_sum / self.rows.clamp_min(1)[:, None, None]


@torch.no_grad()
def calibration_stats(unet: nn.Module, names: list[str], calib_x: torch.Tensor, calib_t: torch.Tensor,
                      hessian: bool = True, call=None, per_group: bool = False) -> dict[str, InputStats]:
    """Input statistics of the named Conv2d/Linear layers of the FP ``unet`` on the calibration inputs
    x [G, N, C, H, W], t [G, N]: one FP forward per group (the whole group as one batch, so two calls
    on the same inputs give the same sums). ``hessian``: also accumulate Σ x xᵀ (GPTQ needs it), pooled
    over the groups or, with ``per_group``, one sum per group.
    call(x, t): how the model runs ``unet`` (conditioning; both branches of classifier-free guidance
    feed the sums), default unet(x, t)."""
    dev = next(unet.parameters()).device
    G = calib_x.shape[0]
    stats: dict[str, InputStats] = {}
    group = [0]

    def hook(name):
        def pre(module, args):
            cols = layer_columns(args[0], module)
            if name not in stats:
                cg, _, k = cols.shape
                stats[name] = InputStats(
                    col_sum=torch.zeros(G, cg, k, dtype=torch.float64, device=cols.device),
                    rows=torch.zeros(G, dtype=torch.int64, device=cols.device),
                    xtx=torch.zeros(G if per_group else 1, cg, k, k, dtype=torch.float64, device=cols.device)
                    if hessian else None, per_group=per_group)
            stats[name].add(cols.float(), group[0])
        return pre

    from .models import full_fp32

    handles = [unet.get_submodule(n).register_forward_pre_hook(hook(n)) for n in names]
    try:
        for g in range(G):
            group[0] = g
            with full_fp32(dev):
                (call or unet)(torch.as_tensor(calib_x[g]).to(dev), torch.as_tensor(calib_t[g]).to(dev))
    finally:
        for h in handles:
            h.remove()
    missing = [n for n in names if n not in stats]
    if missing:
        raise ValueError(f"layers {missing[:3]} never ran on the calibration inputs; they cannot be calibrated.")
    return stats


def hessian_factor(h: torch.Tensor, damp: float = DAMP, act_order: bool = False, keep_h: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """GPTQ's factor of H [cg, K, K]: (U float32 [cg, K, K], dead bool [cg, K], perm int64 [cg, K] or None,
    H float32 [cg, K, K] in the columns' order, undampened, or None).

    U is the upper Cholesky factor of (H + damp · mean(diag H) · I)⁻¹; its row i holds the weights
    with which column i's rounding error moves the later columns. Dead columns (an input that is
    zero on every calibration row, diagonal 0) get diagonal 1 first, so H stays invertible; their
    weights are set to zero by ``gptq``. act_order: the columns are rounded in order of falling
    diag H (GPTQ's activation order), so the inputs with the most energy are rounded first, while
    every later column can still absorb their error; U and dead are then in that order, and perm[k]
    lists conv group k's columns in it (None: left to right). keep_h: also return H itself, which
    ``gptq-act-clip`` needs to score each clip ratio by output error (``quant.quantize_weight``).
    """
    h = h.double().clone()
    perm = None
    if act_order:
        perm = torch.argsort(torch.diagonal(h, dim1=1, dim2=2), dim=1, descending=True, stable=True)
        h = torch.stack([hk[p][:, p] for hk, p in zip(h, perm)])
    kept = h.float() if keep_h else None
    diag = torch.diagonal(h, dim1=1, dim2=2)
    dead = diag == 0
    diag[dead] = 1.0
    diag += damp * diag.mean(1, keepdim=True)
    hinv = torch.cholesky_inverse(torch.linalg.cholesky(h))
    return torch.linalg.cholesky(hinv, upper=True).float(), dead, perm, kept


def gptq(w: torch.Tensor, u: torch.Tensor, dead: torch.Tensor, scale: torch.Tensor, bits: int,
         zero: torch.Tensor | None = None, block: int = BLOCK) -> torch.Tensor:
    """GPTQ-rounded copy of one conv group's weight rows w [R, K] (R output channels, K columns).

    u [K, K], dead [K]: ``hessian_factor`` of this conv group. scale, zero [R, 1] (zero None: symmetric):
    the fixed per-channel grid (``round_to_grid``). Columns are rounded in the order given (``quantize_weight`` permutes them for act order). Lazy batch: inside a
    block of ``block`` columns each error updates the block's later columns at once; the trailing
    columns get the block's errors in one matmul.
    """
    w = w.float().clone()
    w[:, dead] = 0.0
    q = torch.zeros_like(w)
    k = w.shape[1]
    for i1 in range(0, k, block):
        i2 = min(i1 + block, k)
        w1 = w[:, i1:i2].clone()
        err1 = torch.zeros_like(w1)
        u1 = u[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = w1[:, i:i + 1]
            qc = round_to_grid(col, scale, bits, zero)
            q[:, i1 + i:i1 + i + 1] = qc
            e = (col - qc) / u1[i, i]
            w1[:, i:] -= e * u1[i:i + 1, i:]
            err1[:, i:i + 1] = e
        w[:, i2:] -= err1 @ u[i1:i2, i2:]
    return q


def output_shift(dw: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Mean output change (W_q − W) E[x] per output channel, [C_out].

    dw: W_q − W, [C_out, ...] (any conv/linear weight shape); mean: E[x] columns [cg, K] of one group.
    """
    cg, k = mean.shape
    rows = dw.reshape(cg, -1, k).double()
    return (rows @ mean.double()[:, :, None]).reshape(-1)
