"""Weight rounding: im2col equals the conv, GPTQ beats round-to-nearest out of sample on the shipped
default model, and quantize() rebuilds exactly the weights a GPTQ profile measured."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dadq
from dadq.calibrate import calibration_inputs, layer_inputs
from dadq.quant import _CALIB_MEMO, quantize_weight
from dadq.rounding import calibration_stats, hessian_factor, layer_columns, per_group_hessian


def test_unfold_matmul_equals_conv():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, kernel_size=(3, 2), stride=(2, 1), padding=(1, 2), dilation=(2, 1), groups=2, bias=False)
    x = torch.randn(3, 4, 9, 7)
    y = conv(x)
    cols = layer_columns(x, conv)  # [2 conv groups, N * positions, 2 * 3 * 2]
    assert cols.shape == (2, 3 * y.shape[2] * y.shape[3], 12)
    w = conv.weight.reshape(2, 3, 12)  # conv group k holds output channels 3k..3k+2
    out = torch.einsum("grk,gok->rgo", cols, w).reshape(3, y.shape[2], y.shape[3], 6).permute(0, 3, 1, 2)
    assert torch.allclose(out, y, atol=1e-6)
    lin = nn.Linear(5, 2)
    xl = torch.randn(2, 7, 5)
    assert torch.equal(layer_columns(xl, lin)[0], xl.reshape(14, 5))


def test_gptq_dead_columns_are_zero_and_high_bits_are_near_exact():
    torch.manual_seed(0)
    x = torch.randn(500, 16)
    x[:, 3] = 0.0  # an input that never fires
    h = (x.T @ x / len(x))[None].double()
    w = torch.randn(8, 16)
    live = torch.arange(16) != 3
    for act_order in (False, True):
        factor = hessian_factor(h, act_order=act_order)
        assert factor[1].sum() == 1 and factor[1][0, 15 if act_order else 3]  # act order puts the dead input last
        q = quantize_weight(w, 4, factor)
        assert torch.all(q[:, 3] == 0)
        assert (quantize_weight(w, 16, factor) - w)[:, live].abs().max() < 1e-3
    perm = hessian_factor(h, act_order=True)[2][0]
    assert torch.equal(perm.sort().values, torch.arange(16))
    assert torch.all(torch.diagonal(h[0])[perm].diff() <= 0)


LAYERS = ["conv_in", "down_blocks.1.resnets.0.conv1", "mid_block.attentions.0.to_q",
          "up_blocks.0.resnets.0.conv_shortcut", "time_embedding.linear_2", "conv_out"]


@pytest.fixture(scope="module")
def default_sets():
    """The default model with an estimation and a held-out calibration set (different seeds)."""
    model = dadq.load_model("default")
    groups = dadq.TimestepGroups(model.num_timesteps, 5)
    est = calibration_inputs(model, groups, 4, seed=0, steps=20)
    held = calibration_inputs(model, groups, 4, seed=1, steps=20)
    return model, est, held


@torch.no_grad()
def test_gptq_beats_rtn_on_held_out_inputs(default_sets):
    model, (x0, t0), (x1, t1) = default_sets
    stats = calibration_stats(model.unet, LAYERS, x0, t0)
    held = layer_inputs(model.unet, LAYERS, x1, t1)
    kinds = set()
    act_over_plain = []
    for name in LAYERS:
        layer = model.unet.get_submodule(name)
        kinds.add(type(layer).__name__)
        factor = hessian_factor(stats[name].hessian())
        act = hessian_factor(stats[name].hessian(), act_order=True)
        run = (lambda a, w, m=layer: F.conv2d(a, w, None, m.stride, m.padding, m.dilation, m.groups)) \
            if isinstance(layer, nn.Conv2d) else F.linear
        for bits in (3, 4):
            mse = {}
            for rounding, w in (("rtn", quantize_weight(layer.weight, bits)),
                                ("gptq", quantize_weight(layer.weight, bits, factor)),
                                ("gptq-act", quantize_weight(layer.weight, bits, act))):
                mse[rounding] = float(np.mean([(run(a, w) - run(a, layer.weight)).pow(2).mean() for a in held[name]]))
            assert mse["gptq"] < mse["rtn"] and mse["gptq-act"] < mse["rtn"], (name, bits, mse)
            act_over_plain.append(mse["gptq-act"] / mse["gptq"])
    assert kinds == {"Conv2d", "Linear"}
    # activation order lowers the held-out output error on the whole (geometric mean over layers and widths)
    assert np.exp(np.mean(np.log(act_over_plain))) < 0.95, act_over_plain


@pytest.mark.parametrize("rounding", ["gptq", "gptq-act", "gptq-act-group", "gptq-act-clip"])
def test_quantize_rebuilds_the_profiled_gptq_weights(tiny_model, rounding):
    layer = "up_blocks.1.resnets.0.conv1"
    prof = dadq.profile(tiny_model, groups=2, bits=[3], calib_per_group=2, seed=0, layers=[layer], rounding=rounding,
                        bias_correction=True)
    assert prof.settings()["rounding"] == rounding and prof.meta["bias_correction"] is True
    alloc = dadq.allocate(prof, budget=3, target="w", method="uniform")
    _CALIB_MEMO.clear()  # rebuilt from the profile's calibration inputs, not served from the profile's memo
    qmodel = dadq.quantize(tiny_model, prof, alloc)
    ql = qmodel.unet.layers[layer]
    assert not torch.equal(ql.quantized_weight(3), quantize_weight(ql.weight, 3))  # GPTQ, not RTN
    # per-group Hessians: each group rounds its own copy, and the stored size counts both; pooled: one copy
    own = per_group_hessian(rounding)
    assert torch.equal(ql.quantized_weight(3, 0), ql.quantized_weight(3, 1)) != own
    assert alloc.stored_weight_bits == (2 if own else 1) * 3 * ql.weight.numel()
    if own:
        with pytest.raises(ValueError, match="weight_mode='per-group'"):
            dadq.allocate(prof, budget=3, target="w", method="uniform", weight_mode="shared")
    # the sampled model's distortion is the profiled point: same weights, same corrected biases
    measured = dadq.measure_distortion(tiny_model, prof, alloc, qmodel)
    assert np.allclose(measured, prof.d_w[:, 0, 0], rtol=1e-5, atol=1e-9)
    # quantized weights are computed once per bits and shared by later quantize() calls
    again = dadq.quantize(tiny_model, prof, alloc).unet.layers[layer]
    assert again.quantized_weight(3) is ql.quantized_weight(3) and again.quantized_weight(3, 1) is ql.quantized_weight(3, 1)


@torch.no_grad()
def test_per_group_hessians_fit_each_groups_own_inputs(default_sets):
    """GPTQ with group g's Hessian is GPTQ on group g's inputs alone, and on the estimation inputs it
    leaves less output error in each group, summed over layers, than the Hessian pooled over groups."""
    model, (x0, t0), _ = default_sets
    G = x0.shape[0]
    pooled = calibration_stats(model.unet, LAYERS, x0, t0)
    per_group = calibration_stats(model.unet, LAYERS, x0, t0, per_group=True)
    alone = calibration_stats(model.unet, LAYERS, x0[1:2], t0[1:2])
    seen = layer_inputs(model.unet, LAYERS, x0, t0)
    with pytest.raises(ValueError, match="per_group=True"):
        pooled[LAYERS[0]].hessian(0)
    for bits in (3, 4):
        err = np.zeros((2, G))  # [pooled, per group], summed over layers
        for name in LAYERS:
            layer = model.unet.get_submodule(name)
            st = per_group[name]
            assert torch.allclose(st.hessian(), pooled[name].hessian(), rtol=1e-9)  # the groups sum to the pool
            assert torch.allclose(st.hessian(1), alone[name].hessian(), rtol=1e-9)
            run = (lambda a, w, m=layer: F.conv2d(a, w, None, m.stride, m.padding, m.dilation, m.groups)) \
                if isinstance(layer, nn.Conv2d) else F.linear
            w_pool = quantize_weight(layer.weight, bits, hessian_factor(pooled[name].hessian(), act_order=True))
            for g in range(G):
                w_g = quantize_weight(layer.weight, bits, hessian_factor(st.hessian(g), act_order=True))
                y = run(seen[name][g], layer.weight)
                err[0, g] += float((run(seen[name][g], w_pool) - y).pow(2).mean())
                err[1, g] += float((run(seen[name][g], w_g) - y).pow(2).mean())
        assert np.all(err[1] < err[0]), (bits, err)


@torch.no_grad()
def test_output_clip_lowers_the_output_error_in_and_out_of_sample(default_sets):
    """gptq-act-clip picks each channel's clip ratio by the layer's output error after GPTQ: on the Hessian's
    own inputs no channel leaves more error than with the weight-MSE ratio (that ratio is one of the candidates),
    and on held-out inputs the output error falls on the whole, over the layers with at least as many calibration
    rows as Hessian columns."""
    model, (x0, t0), (x1, t1) = default_sets
    stats = calibration_stats(model.unet, LAYERS, x0, t0)
    held = layer_inputs(model.unet, LAYERS, x1, t1)
    ratios, changed = [], []
    for name in LAYERS:
        layer = model.unet.get_submodule(name)
        h = stats[name].hessian()[0].float()
        act = hessian_factor(stats[name].hessian(), act_order=True)
        clip = hessian_factor(stats[name].hessian(), act_order=True, keep_h=True)
        assert act[3] is None and torch.equal(clip[3][0], h[clip[2][0]][:, clip[2][0]])  # H in the columns' order
        run = (lambda a, w, m=layer: F.conv2d(a, w, None, m.stride, m.padding, m.dilation, m.groups)) \
            if isinstance(layer, nn.Conv2d) else F.linear
        for bits in (3, 4):
            w_act, w_clip = quantize_weight(layer.weight, bits, act), quantize_weight(layer.weight, bits, clip)
            changed.append(not torch.equal(w_act, w_clip))
            d_act, d_clip = ((w - layer.weight).reshape(w.shape[0], -1).double() for w in (w_act, w_clip))
            in_sample = [((d @ h.double()) * d).sum(1) for d in (d_act, d_clip)]
            assert torch.all(in_sample[1] <= in_sample[0] * (1 + 1e-5) + 1e-12), (name, bits)
            mse = [float(np.mean([(run(a, w) - run(a, layer.weight)).pow(2).mean() for a in held[name]]))
                   for w in (w_act, w_clip)]
            # time_embedding.linear_2 sees one row per sample, 20 here, for 128 columns: its ratios fit those rows
            if int(stats[name].rows.sum()) >= h.shape[-1]:
                ratios.append(mse[1] / mse[0])
    assert sum(changed) >= len(changed) - 2, changed  # a layer may keep every channel's ratio (conv_out at 4 bits)
    assert np.exp(np.mean(np.log(ratios))) < 0.95, ratios
