"""Quantizers and the fake-quant wrapper, on a real (tiny) UNet2DModel."""
import torch

import dadq
from dadq.quant import QuantizedUNet, activation_range, fake_quant_activation, quantize_weight


def test_weight_quantizer_levels_and_error():
    torch.manual_seed(0)
    w = torch.randn(16, 8, 3, 3)
    errs = []
    for b in (1, 2, 3, 4, 6, 8, 16):
        q = quantize_weight(w, b)
        per_ch = [torch.unique(q[c]).numel() for c in range(16)]
        assert max(per_ch) <= (2 if b == 1 else 2 ** b - 1)  # narrow symmetric grid
        errs.append(float((q - w).pow(2).mean()))
    assert all(e1 > e2 for e1, e2 in zip(errs, errs[1:]))
    assert errs[-1] < 1e-8
    # 1 bit: sign x mean |w| per output channel
    q1 = quantize_weight(w, 1)
    assert torch.allclose(q1[3].abs(), w[3].abs().mean().expand_as(q1[3]))


def test_weight_clip_search_beats_minmax():
    torch.manual_seed(0)
    w = torch.randn(8, 256)
    w[:, 0] = 8.0  # an outlier per channel: min/max scaling wastes the grid
    q = quantize_weight(w, 3)
    scale = w.abs().amax(1, keepdim=True) / 3
    naive = torch.clamp(torch.round(w / scale), -3, 3) * scale
    assert (q - w).pow(2).mean() < (naive - w).pow(2).mean()


def test_activation_quantizer():
    torch.manual_seed(0)
    x = torch.nn.functional.silu(torch.randn(10000) * 2)
    for b in (2, 4, 8):
        lo, hi = activation_range(x, b)
        assert lo <= 0 <= hi
        q = fake_quant_activation(x, lo, hi, b)
        assert torch.unique(q).numel() <= 2 ** b
    lo8, hi8 = activation_range(x, 8)
    e = [float((fake_quant_activation(x, *activation_range(x, b), b) - x).pow(2).mean()) for b in (2, 4, 8)]
    assert e[0] > e[1] > e[2]


def test_wrapper_uses_each_groups_own_bits(tiny_model):
    groups = dadq.TimestepGroups(1000, 3)
    q = QuantizedUNet(tiny_model.unet, groups)
    name = "conv_in"
    ql = q.layers[name]
    ql.w_bits = [2, 8, 32]  # group 0 at 2 bits, group 1 at 8 bits, group 2 FP
    seen = []
    orig = ql.quantized_weight
    ql.quantized_weight = lambda b, g=0: (seen.append((q.state.group, b)), orig(b, g))[1]
    x = torch.randn(2, 1, 16, 16)
    for t, g in ((5, 0), (400, 1), (999, 2)):
        seen.clear()
        q(x, torch.tensor([t, t]))
        assert seen == [(g, ql.w_bits[g])]
    # a batch that mixes groups is split: each sample gets its own group's output
    out_mixed = q(x, torch.tensor([5, 999])).sample
    out0 = q(x[:1], torch.tensor([5])).sample
    out2 = q(x[1:], torch.tensor([999])).sample
    assert torch.allclose(out_mixed, torch.cat([out0, out2]), atol=1e-6)
    assert not torch.allclose(out0, tiny_model.unet(x[:1], torch.tensor([5])).sample, atol=1e-4)
    assert torch.allclose(out2, tiny_model.unet(x[1:], torch.tensor([999])).sample, atol=1e-6)


def test_weights_cached_once_per_bits(tiny_model):
    q = QuantizedUNet(tiny_model.unet, dadq.TimestepGroups(1000, 2))
    ql = q.layers["conv_out"]
    w4 = ql.quantized_weight(4)
    assert ql.quantized_weight(4) is w4
    assert ql.weight is tiny_model.unet.conv_out.weight  # shared, not copied


def test_16_bits_everywhere_matches_fp_and_2_bits_does_not(tiny_model):
    prof = dadq.profile(tiny_model, groups=2, bits=[2, 16], calib_per_group=2, seed=1, layers="*conv*")
    full = dadq.allocate(prof, budget=16, method="uniform")
    low = dadq.allocate(prof, budget=2, method="uniform")
    assert (full.w_bits == 16).all() and (low.a_bits == 2).all()
    d16 = dadq.measure_distortion(tiny_model, prof, full)
    d2 = dadq.measure_distortion(tiny_model, prof, low)
    assert d16.max() < 1e-6
    assert d2.min() > 100 * max(d16.max(), 1e-9)
    # the allocation carries its activation ranges (split inputs too): no profile needed for RTN weights
    assert prof.split_layers()
    x, t = torch.from_numpy(prof.calib_x[1]), torch.from_numpy(prof.calib_t[1])
    mixed = dadq.allocate(prof, budget=5, method="exact")
    assert torch.equal(dadq.quantize(tiny_model, allocation=mixed).eps(x, t),
                       dadq.quantize(tiny_model, prof, mixed).eps(x, t))
    # the FP model is untouched by quantize()
    before = {k: v.clone() for k, v in tiny_model.unet.state_dict().items()}
    dadq.quantize(tiny_model, prof, low)
    after = tiny_model.unet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
