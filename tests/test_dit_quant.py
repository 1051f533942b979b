"""Per-token dynamic activation ranges (``act_granularity="token"``): the quantizer, its honest size, its
record in the profile, and that profiling and quantized sampling use the same quantizer."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dadq
from dadq.quant import (TOKEN_PARAM_BITS, activation_range, fake_quant_activation, fake_quant_tokens, token_clip_ratio,
                        token_elements)

torch.set_num_threads(1)

DIT = dict(_class_name="DiTTransformer2DModel", sample_size=28, in_channels=1, out_channels=1, patch_size=4,
           num_attention_heads=2, attention_head_dim=8, num_layers=1, num_embeds_ada_norm=10)


def test_token_quantizer_keeps_each_token_in_its_own_range():
    g = torch.Generator().manual_seed(0)
    # tokens whose scales differ by 100x: a per-tensor range wastes its levels on the large ones
    x = torch.randn(2, 6, 32, generator=g) * torch.logspace(-1, 1, 6).view(1, 6, 1)
    q = fake_quant_tokens(x, 1.0, 4)
    step = (x.amax(-1, keepdim=True) - x.amin(-1, keepdim=True)) / 15
    assert ((q - x).abs() <= 0.5 * step + 1e-5).all()  # every value within half of its own token's step
    per_token = float((q - x).pow(2).mean())
    per_tensor = float((fake_quant_activation(x, *activation_range(x, 4), 4) - x).pow(2).mean())
    assert per_token < 0.5 * per_tensor
    # small tokens keep their relative precision
    small = (q[:, 0] - x[:, 0]).pow(2).mean() / x[:, 0].pow(2).mean()
    assert small < 0.02
    # the calibrated clip ratio is never worse than no clipping
    r = token_clip_ratio(x, 3)
    assert float((fake_quant_tokens(x, r, 3) - x).pow(2).mean()) <= float((fake_quant_tokens(x, 1.0, 3) - x).pow(2).mean())


def test_patch_tokens_of_a_patchify_conv():
    conv = torch.nn.Conv2d(2, 8, 4, stride=4)
    assert token_elements(conv) == 2 * 4 * 4
    assert token_elements(torch.nn.Conv2d(2, 8, 3, padding=1)) == 0  # no tokens: stays per tensor
    assert token_elements(torch.nn.Linear(24, 5)) == 24
    x = torch.randn(3, 2, 8, 12, generator=torch.Generator().manual_seed(0))
    x[:, :, :4, :4] *= 50  # one loud patch per image
    q = fake_quant_tokens(x, 1.0, 4, patch=(4, 4))
    assert q.shape == x.shape
    quiet = (slice(None), slice(None), slice(4, None), slice(None))
    # the quiet patches are quantized on their own small ranges, not the loud patch's
    assert float((q[quiet] - x[quiet]).pow(2).mean()) < 0.01 * float(x[quiet].pow(2).mean())
    # at 16 bits every value is within half a step of its token's grid; the loud patch's step is the widest
    step = float(x.max() - x.min()) / (2 ** 16 - 1)
    torch.testing.assert_close(fake_quant_tokens(x, 1.0, 16, patch=(4, 4)), x, atol=0.5 * step + 1e-6, rtol=0)


@pytest.fixture(scope="module")
def tiny():
    model = dadq.load_model(DIT, guidance_scale=2.0)
    kw = dict(groups=2, bits=[2, 4, 8], calib_per_group=2, calib_steps=4)
    return model, dadq.profile(model, **kw), dadq.profile(model, act_granularity="token", **kw)


def test_token_profile_records_and_sizes(tiny):
    model, per_tensor, per_token = tiny
    assert "act_granularity" not in per_tensor.settings()  # per-tensor profiles keep their settings
    assert per_token.settings()["act_granularity"] == "token"
    tok = per_token.token_layers()
    # every Linear, and the patch embedding conv, takes per-token ranges
    assert set(tok) == set(per_token.layer_names)
    assert tok["pos_embed.proj"] == 16 and tok["transformer_blocks.0.ff.net.2"] == 64
    i = per_token.layer_names.index("transformer_blocks.0.attn1.to_q")
    tokens = per_token.a_numel[i] / 16  # 49 tokens x 16 features
    assert tokens == 49
    assert per_token.a_overhead_bits[i] == 49 * TOKEN_PARAM_BITS
    np.testing.assert_allclose(per_token.sizes("a")[i], per_tensor.sizes("a")[i] + 49 * TOKEN_PARAM_BITS)
    np.testing.assert_array_equal(per_token.sizes("w"), per_tensor.sizes("w"))
    assert (per_tensor.a_overhead_bits == 0).all()
    # clip ratios, not ranges, for per-token layers
    assert (per_token.act_range[:, i] <= 1.0).all() and (per_token.act_range[:, i] >= 0.3).all()


def test_activation_views_show_ratios_not_ranges_for_token_layers(tiny):
    """A per-token input has no fixed range: the histogram draws no dashed range lines and the table gives
    the clip ratio of each token's own width; a per-tensor profile of the same model still marks its ranges."""
    from dadq.plots import activation_hist, activation_table

    _, per_tensor, per_token = tiny
    layer = "transformer_blocks.0.attn1.to_q"
    fig = activation_hist(per_token, layer, bits=4)
    assert not fig.layout.shapes and "per-token 4-bit ranges" in fig.layout.title.text
    assert len(activation_hist(per_tensor, layer, bits=4).layout.shapes) == 2 * per_tensor.num_groups
    headers, rows = activation_table(per_token, layer, bits=4)
    i, m = per_token.layer_names.index(layer), list(per_token.bits).index(4)
    assert headers[5] == "clip / each token's width" and rows[0][3] == "per token"
    assert [r[5] for r in rows] == [round(float(per_token.act_range[g, i, m][0]), 3) for g in range(2)]


def test_allocation_counts_the_token_ranges_it_paid_for(tiny, tmp_path):
    """The allocation reports the size its solver spent: per-token range bits included, and kept on save."""
    _, per_tensor, per_token = tiny
    alloc = dadq.allocate(per_token, budget=4.0, target="a", method="exact")
    value_bits = (alloc.a_bits * alloc.a_numel[None, :]).sum(1)
    assert (alloc.group_bits > value_bits).all()  # the ranges are counted
    assert (alloc.group_avg_bits <= 4.0 + 1e-9).all()  # and the budget holds with them
    again = dadq.Allocation.load(alloc.save(tmp_path / "a.json"), profile=per_token)
    np.testing.assert_allclose(again.group_bits, alloc.group_bits)
    plain = dadq.allocate(per_tensor, budget=4.0, target="a", method="exact")
    assert plain.a_overhead is None
    np.testing.assert_allclose(plain.group_bits, (plain.a_bits * plain.a_numel[None, :]).sum(1))


def test_token_quantizer_is_used_in_sampling(tiny, tmp_path):
    model, _, per_token = tiny
    path = per_token.save(tmp_path / "p.safetensors")
    prof = dadq.Profile.load(path)
    assert prof.token_layers() == per_token.token_layers()
    alloc = dadq.allocate(prof, budget=4)
    q = dadq.quantize(model, prof, alloc)
    name = "transformer_blocks.0.ff.net.2"
    ql = q.unet.layers[name]
    assert ql.a_token == 64
    g = 1
    seen = {}
    h = ql.register_forward_hook(lambda m, a, out: seen.update(x=a[0], y=out))
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    t = torch.full((2,), 900)  # group 1
    q.eps(x, t, class_labels=[1, 2], guidance_scale=1.0)
    h.remove()
    ab, wb = ql.a_bits[g], ql.w_bits[g]
    ratio = float(alloc.act_range[g, alloc.layer_names.index(name), 1])
    want = F.linear(fake_quant_tokens(seen["x"], ratio, ab), ql.quantized_weight(wb), ql.quantized_bias(wb, g))
    torch.testing.assert_close(seen["y"], want)
    # the allocation alone rebuilds the same quantizers (its settings name the granularity)
    q2 = dadq.quantize(model, allocation=alloc)
    assert q2.unet.layers[name].a_token == 64
    torch.testing.assert_close(q2.eps(x, t, class_labels=[1, 2]), q.eps(x, t, class_labels=[1, 2]))
    # the profile measured D with the same quantizer: re-measure one point through the quantized model
    li = prof.layer_names.index(name)
    qx = dadq.quantize(model, prof, _one_layer(alloc, prof, li, bits=4))
    from dadq.calibrate import profile_conditioning
    from dadq.distortion import distortion

    cond = profile_conditioning(model, prof)
    xs, ts = torch.from_numpy(prof.calib_x[0]), torch.from_numpy(prof.calib_t[0])
    d = distortion(model.eps(xs, ts, **cond), qx.eps(xs, ts, **cond), prof.meta["metric"])
    assert d == pytest.approx(prof.d_a[0, li, 1], rel=1e-4, abs=1e-7)


def _one_layer(alloc, prof, li, bits):
    """An allocation with only layer li's input at ``bits`` (everything else FP), group ranges from prof."""
    import copy

    from dadq.bitwidths import FP_BITS

    a = copy.deepcopy(alloc)
    a.w_bits[:] = FP_BITS
    a.a_bits[:] = FP_BITS
    a.a_bits[:, li] = bits
    a.act_range = prof.activation_ranges_for(a.a_bits)
    return a


def test_token_ranges_lower_the_dit_a_curves(tiny):
    """Per-tensor ranges must cover every token of every sample (both guidance branches, all timesteps of a
    group); per-token ranges follow each token. On the DiT's linears the summed A-distortion falls."""
    _, per_tensor, per_token = tiny
    assert per_tensor.layer_names == per_token.layer_names
    linear = [i for i, n in enumerate(per_tensor.layer_names) if per_tensor.layer_types[i] == "Linear"]
    for m in (0, 1):  # 2 and 4 bits
        dt = per_tensor.d_a[:, linear, m].mean(0).sum()
        dk = per_token.d_a[:, linear, m].mean(0).sum()
        assert dk < 0.8 * dt, (per_tensor.bits[m], dt, dk)
    # the final projection, whose input mixes tokens of very different scale, gains most
    i = per_tensor.layer_names.index("proj_out_2")
    assert (per_token.d_a[:, i, 1] < per_tensor.d_a[:, i, 1]).all()
