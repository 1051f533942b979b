"""Split concat inputs: a UNet up block's concatenated [upsampled path, skip] input takes one
activation range per part."""
import numpy as np
import torch
from torch import nn

import dadq
from dadq.quant import GroupState, QuantLayer, concat_splits, fake_quant_activation


def test_splits_follow_the_up_block_structure(tiny_model):
    unet = tiny_model.unet
    splits = concat_splits(unet)
    rev = list(reversed(unet.config.block_out_channels))
    expected = {}
    for i, block in enumerate(unet.up_blocks):
        for j, resnet in enumerate(block.resnets):
            # hidden: the previous up block's (or the mid block's) output for j = 0, else this block's
            hidden = (rev[i - 1] if i else rev[0]) if j == 0 else rev[i]
            for leaf in ("conv1", "conv_shortcut"):
                expected[f"up_blocks.{i}.resnets.{j}.{leaf}"] = hidden
    assert splits == expected
    for name, s in splits.items():
        assert 0 < s < unet.get_submodule(name).in_channels


def test_each_part_is_quantized_with_its_own_range():
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 3, 1)
    ql = QuantLayer(conv, "conv", 1, GroupState())
    small = torch.rand(2, 2, 5, 5)  # the upsampled path: values in [0, 1]
    large = 100 * torch.randn(2, 4, 5, 5)  # the skip: a range 100x wider
    x = torch.cat([small, large], 1)
    parts = ((0.0, 1.0), (float(large.min()), float(large.max())))
    ql.a_split, ql.a_range_parts = 2, [parts]
    q = ql.quantize_input(x, 4, 0)
    assert torch.equal(q[:, :2], fake_quant_activation(small, 0.0, 1.0, 4))
    assert torch.equal(q[:, 2:], fake_quant_activation(large, *parts[1], 4))
    assert (q[:, :2] - small).abs().max() <= 0.5 / 15 + 1e-6  # half a step of [0, 1] on 16 levels
    # one range for the whole tensor wipes the small part out
    whole = fake_quant_activation(x, float(x.min()), float(x.max()), 4)
    assert (whole[:, :2] - small).abs().mean() > 10 * (q[:, :2] - small).abs().mean()
    # and the wrapper's forward uses the parts
    ql.a_bits = [4]
    assert torch.allclose(ql(x), conv(q))


def test_profile_stores_part_ranges_and_quantize_uses_them(tiny_model, tmp_path):
    layers = ["up_blocks.0.resnets.0.conv_shortcut", "up_blocks.1.resnets.1.conv1", "conv_out"]
    prof = dadq.profile(tiny_model, groups=2, bits=[4], calib_per_group=2, seed=0, layers=layers, split_concat=True)
    split = dict(zip(prof.layer_names, prof.a_split.tolist()))
    assert split["conv_out"] == 0 and split["up_blocks.0.resnets.0.conv_shortcut"] > 0
    li = prof.layer_names.index("up_blocks.0.resnets.0.conv_shortcut")
    assert np.all(prof.act_range_parts[:, li, :, :, 0] < prof.act_range_parts[:, li, :, :, 1])
    loaded = dadq.Profile.load(prof.save(tmp_path / "p.safetensors"))
    assert np.array_equal(loaded.a_split, prof.a_split) and np.array_equal(loaded.act_range_parts, prof.act_range_parts)
    assert loaded.settings()["split_concat"] is True
    alloc = dadq.allocate(prof, budget=4, target="a", method="uniform")
    ql = dadq.quantize(tiny_model, loaded, alloc).unet.layers["up_blocks.0.resnets.0.conv_shortcut"]
    assert ql.a_split == split["up_blocks.0.resnets.0.conv_shortcut"]
    assert np.allclose(ql.a_range_parts[1], prof.act_range_parts[1, li, 0])
