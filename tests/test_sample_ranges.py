"""Per-sample dynamic activation ranges (``act_granularity="sample"``): each sample's input to a layer is
quantized over its own min/max (times a calibrated clip ratio), its range counted in the size, and the profile
and quantized sampling use the same quantizer."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dadq
from dadq.quant import TOKEN_PARAM_BITS, activation_range, fake_quant_activation, fake_quant_tokens

torch.set_num_threads(1)

LAYERS = ["down_blocks.0.resnets.0.conv1", "up_blocks.0.resnets.0.conv_shortcut", "conv_out"]


def test_each_sample_takes_its_own_range():
    g = torch.Generator().manual_seed(0)
    # three samples whose scales differ by 100x: one range for the batch wastes its levels on the loud one
    x = torch.randn(3, 4, 6, 6, generator=g) * torch.tensor([0.1, 1.0, 10.0]).view(3, 1, 1, 1)
    q = fake_quant_tokens(x, 1.0, 4, elements=4 * 6 * 6)
    assert q.shape == x.shape
    for i in range(3):  # the same as quantizing that sample alone over its own min/max
        torch.testing.assert_close(q[i], fake_quant_activation(x[i], float(x[i].min()), float(x[i].max()), 4))
    quiet = float((q[0] - x[0]).pow(2).mean())
    batch = fake_quant_activation(x, *activation_range(x, 4), 4)
    assert quiet < 0.05 * float((batch[0] - x[0]).pow(2).mean())  # the batch range rounds it all to 0
    with pytest.raises(ValueError, match="another input size"):
        fake_quant_tokens(x, 1.0, 4, elements=100)


def test_a_channels_last_input_keeps_its_layout_and_values():
    """The conv inputs of a dadq model are channels_last: ranges per sample quantize them where they lie, to the
    same values as each sample's input flattened into one token."""
    x = torch.randn(5, 8, 7, 7, generator=torch.Generator().manual_seed(1)).to(memory_format=torch.channels_last)
    q = fake_quant_tokens(x, 0.9, 6, elements=8 * 7 * 7)
    assert q.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(q, fake_quant_tokens(x.reshape(5, -1), 0.9, 6).reshape(x.shape))


@pytest.fixture(scope="module")
def profiles(tiny_model):
    kw = dict(groups=2, bits=[4, 8], calib_per_group=2, seed=0, layers=LAYERS, split_concat=True)
    return dadq.profile(tiny_model, **kw), dadq.profile(tiny_model, act_granularity="sample", **kw)


def test_sample_profile_records_one_range_per_sample(profiles, tmp_path):
    per_tensor, per_sample = profiles
    assert per_sample.settings()["act_granularity"] == "sample"
    assert per_sample.token_layers() == {n: int(k) for n, k in zip(per_sample.layer_names, per_sample.a_numel)}
    # one fp16 scale + zero point per sample and layer; split inputs need no parts (each sample's range fits both)
    np.testing.assert_array_equal(per_sample.a_overhead_bits, TOKEN_PARAM_BITS)
    assert (per_sample.a_split == 0).all() and (per_tensor.a_split > 0).any()
    np.testing.assert_allclose(per_sample.sizes("a"), per_tensor.sizes("a") + TOKEN_PARAM_BITS)
    np.testing.assert_array_equal(per_sample.d_w, per_tensor.d_w)  # the weights are the same
    assert ((per_sample.act_range >= 0.3) & (per_sample.act_range <= 1.0)).all()  # clip ratios, not ranges
    loaded = dadq.Profile.load(per_sample.save(tmp_path / "p.safetensors"))
    assert loaded.token_layers() == per_sample.token_layers() and loaded.settings() == per_sample.settings()


def test_quantized_sampling_uses_the_profiled_per_sample_quantizer(tiny_model, profiles):
    _, prof = profiles
    alloc = dadq.allocate(prof, budget=4.5, target="a", method="uniform")  # 4 bits + the ranges
    q = dadq.quantize(tiny_model, prof, alloc)
    name = "down_blocks.0.resnets.0.conv1"
    ql = q.unet.layers[name]
    li = prof.layer_names.index(name)
    assert ql.a_sample and ql.a_token == prof.a_numel[li]
    seen = {}
    h = ql.register_forward_hook(lambda m, a, out: seen.update(x=a[0], y=out))
    x = torch.randn(2, *prof.calib_x.shape[2:], generator=torch.Generator().manual_seed(1))
    t = torch.full((2,), tiny_model.num_timesteps - 1)  # the last group
    g = prof.num_groups - 1
    q.eps(x, t)
    h.remove()
    assert ql.a_bits[g] == 4
    ratio = float(alloc.act_range[g, li, 0])
    want = F.conv2d(fake_quant_tokens(seen["x"], ratio, 4, elements=ql.a_token), ql.weight, ql.bias, **ql.conv_args)
    torch.testing.assert_close(seen["y"], want)
    # the allocation alone (round to nearest: nothing to rebuild from calibration) gives the same model
    q2 = dadq.quantize(tiny_model, allocation=alloc)
    assert q2.unet.layers[name].a_sample
    torch.testing.assert_close(q2.eps(x, t), q.eps(x, t))
    # each sample is quantized on its own: a sample's output does not depend on the batch beside it
    torch.testing.assert_close(q.eps(x[:1], t[:1]), q.eps(x, t)[:1])
    # the profile measured its D with this quantizer: re-measure one point through the quantized model
    from dadq.distortion import distortion

    one = dadq.allocate(prof, budget=4.5, target="a", method="uniform")
    one.a_bits[:] = 32
    one.a_bits[g, li] = 4
    xs, ts = torch.from_numpy(prof.calib_x[g]), torch.from_numpy(prof.calib_t[g])
    d = distortion(tiny_model.eps(xs, ts), dadq.quantize(tiny_model, prof, one).eps(xs, ts), prof.meta["metric"])
    assert d == pytest.approx(prof.d_a[g, li, 0], rel=1e-4, abs=1e-7)


def test_activation_views_name_the_sample_ranges(profiles):
    from dadq.plots import activation_hist, activation_table

    _, per_sample = profiles
    fig = activation_hist(per_sample, "conv_out", bits=4)
    assert not fig.layout.shapes and "per-sample 4-bit ranges" in fig.layout.title.text
    headers, rows = activation_table(per_sample, "conv_out", bits=4)
    assert headers[5] == "clip / each sample's width" and rows[0][3] == "per sample"
