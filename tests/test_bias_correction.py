"""Bias correction: the mean output shift of quantized weights is folded into the bias, per group."""
import numpy as np
import torch
from torch import nn

import dadq
from dadq.quant import FP_BITS, QuantizedUNet


class TwoLayer(nn.Module):
    """A denoiser-shaped net (x, t) -> eps with a bias-free conv and a linear on the channel axis."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.lin = nn.Linear(4, 4)

    def forward(self, x, t):
        h = torch.relu(self.conv(x) + 0.5) + t.float()[:, None, None, None] / 1000  # positive mean input to lin
        return self.lin(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _inputs(qunet, name, x, t):
    seen = []
    hook = qunet.layers[name].register_forward_pre_hook(lambda m, a: seen.append(a[0]))
    with torch.no_grad():
        qunet.inner(x, t)
    hook.remove()
    return seen[0]


@torch.no_grad()
def test_bias_correction_zeroes_mean_output_shift_on_estimation_set():
    torch.manual_seed(0)
    net = TwoLayer()
    groups = dadq.TimestepGroups(1000, 2)
    x = torch.randn(2, 8, 2, 6, 6) + 0.3  # [G, N, C, H, W]
    t = torch.tensor([[10] * 8, [900] * 8])
    q = QuantizedUNet(net, groups)
    q.setup(x, t, rounding="rtn", bias_correction=True)
    for name in ("conv", "lin"):
        ql = q.layers[name]
        dims = (0, 2, 3) if name == "conv" else (0, 1, 2)
        for g in range(2):
            a = _inputs(q, name, x[g], t[g])
            y = ql.op(a, ql.weight, ql.bias)
            for bits in (2, 3):
                wq = ql.quantized_weight(bits)
                raw = (ql.op(a, wq, ql.bias) - y).mean(dims)
                fixed = (ql.op(a, wq, ql.quantized_bias(bits, g)) - y).mean(dims)
                assert raw.abs().max() > 1e-3  # rounding did shift the mean
                assert fixed.abs().max() < 1e-5 * max(1.0, float(y.abs().mean())), (name, g, bits, fixed)
            assert ql.quantized_bias(FP_BITS, g) is ql.bias
    assert q.layers["conv"].bias is None and q.layers["conv"].quantized_bias(3, 0).shape == (4,)  # got a bias


def test_profile_records_and_quantize_applies_bias_correction(tiny_model):
    layer = "conv_out"
    kw = dict(groups=2, bits=[3], calib_per_group=2, seed=0, layers=[layer])
    plain = dadq.profile(tiny_model, **kw)
    corrected = dadq.profile(tiny_model, bias_correction=True, **kw)
    assert plain.settings()["bias_correction"] is False and corrected.settings()["bias_correction"] is True
    alloc = dadq.allocate(corrected, budget=3, target="w", method="uniform")
    ql = dadq.quantize(tiny_model, corrected, alloc).unet.layers[layer]
    assert ql.calib.in_mean is not None
    assert not torch.equal(ql.quantized_bias(3, 0), ql.bias)
    # in-sample, the corrected curve point is not worse than the plain one
    assert np.all(corrected.d_w <= plain.d_w * 1.05 + 1e-9)
