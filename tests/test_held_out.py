"""Curves measured on a held-out draw of calibration trajectories (``profile(held_out_seed=...)``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import dadq
from dadq.quant import _CALIB_MEMO


def test_held_out_curves_price_the_same_quantizers_out_of_sample(tiny_model, tmp_path):
    layer = "up_blocks.1.resnets.0.conv1"
    kw = dict(groups=2, bits=[2, 3], calib_per_group=2, calib_steps=10, seed=0, layers=[layer], rounding="gptq-act",
              bias_correction=True)
    fit = dadq.profile(tiny_model, **kw)
    held = dadq.profile(tiny_model, held_out_seed=5, **kw)
    # the same fitting draw: the same calibration inputs and activation ranges, so the same quantizers
    assert np.array_equal(fit.calib_x, held.calib_x) and np.array_equal(fit.act_range, held.act_range)
    x, t, seed = held.curve_inputs()
    assert seed == 5 and x.shape == fit.calib_x.shape and not np.array_equal(x, fit.calib_x)
    assert held.meta["held_out_seed"] == 5 and fit.curve_inputs()[2] == 0
    # out of sample, every D differs from the in-sample one
    assert not np.allclose(held.d_w, fit.d_w) and not np.allclose(held.d_a, fit.d_a)
    path = held.save(tmp_path / "held.safetensors")
    back = dadq.Profile.load(path)
    assert np.array_equal(back.held_out_x, held.held_out_x) and back.meta["held_out_seed"] == 5
    assert dadq.Profile.load(fit.save(tmp_path / "fit.safetensors")).held_out_x is None
    # one allocation of each: the weights are the profile's fitting draw's, and the additivity check measures
    # on the held-out draw, where this one-quantizer allocation's measured D is exactly its curve point
    alloc = dadq.allocate(held, budget=3, target="w", method="uniform")
    _CALIB_MEMO.clear()
    q_held = dadq.quantize(tiny_model, back, alloc)
    _CALIB_MEMO.clear()  # the fitting profile's weights rebuilt from its own inputs, not served from the memo
    q_fit = dadq.quantize(tiny_model, fit, dadq.allocate(fit, budget=3, target="w", method="uniform"))
    assert torch.equal(q_held.unet.layers[layer].quantized_weight(3), q_fit.unet.layers[layer].quantized_weight(3))
    measured = dadq.measure_distortion(tiny_model, back, alloc, q_held)
    assert np.allclose(measured, held.d_w[:, 0, 1], rtol=1e-5, atol=1e-9)
    with pytest.raises(ValueError, match="held_out_seed=0 is the fitting seed"):
        dadq.profile(tiny_model, held_out_seed=0, **kw)
