"""The asymmetric per-channel weight grid: its levels, its error, and that a profile made with it is
quantized with it (RTN without a profile too), on a real (tiny) UNet2DModel."""
import numpy as np
import pytest
import torch

import dadq
from dadq.quant import _CALIB_MEMO, quantize_weight, weight_grid


def test_asymmetric_grid_levels_zero_and_error():
    torch.manual_seed(0)
    w = torch.randn(16, 8, 3, 3) + 0.3 * torch.rand(16, 1, 1, 1)  # channels off centre, as trained weights often are
    w[0, 0, 0, 0] = 0.0
    for b in (2, 3, 4, 6):
        sym, asym = quantize_weight(w, b), quantize_weight(w, b, grid="asymmetric")
        levels = [torch.unique(asym[c]).numel() for c in range(16)]
        assert max(levels) <= 2 ** b
        if b <= 3:  # 72 weights a channel fill every level of a narrow width: one more than the symmetric grid's
            assert max(levels) == 2 ** b
        assert float(asym[0, 0, 0, 0]) == 0.0  # the grid holds zero: a zero weight stays zero
        assert (asym - w).pow(2).mean() < (sym - w).pow(2).mean()
        scale, zero = weight_grid(w.reshape(16, -1), b, "asymmetric")
        assert zero.shape == (16, 1) and bool(((zero >= 0) & (zero <= 2 ** b - 1)).all())
    # 1 bit: both grids are sign x mean |w| (two levels of one grid would waste one on zero)
    assert torch.equal(quantize_weight(w, 1, grid="asymmetric"), quantize_weight(w, 1))
    with pytest.raises(ValueError, match="weight_grid"):
        quantize_weight(w, 3, grid="affine")


@pytest.mark.parametrize("rounding", ["rtn", "gptq-act"])
def test_profile_records_the_grid_and_quantize_rebuilds_its_weights(tiny_model, rounding):
    layer = "up_blocks.1.resnets.0.conv1"
    kw = dict(groups=2, bits=[3], calib_per_group=2, seed=0, layers=[layer], rounding=rounding)
    sym = dadq.profile(tiny_model, **kw)
    asym = dadq.profile(tiny_model, weight_grid="asymmetric", **kw)
    # a symmetric profile's settings are those of profiles made before the option existed
    assert "weight_grid" not in sym.settings() and asym.settings()["weight_grid"] == "asymmetric"
    assert asym.meta["weight_quantizer"].startswith("asymmetric")
    alloc = dadq.allocate(asym, budget=3, target="w", method="uniform")
    with pytest.raises(ValueError):  # an allocation refuses a profile made with the other grid
        alloc.check(profile=sym)
    _CALIB_MEMO.clear()
    qmodel = dadq.quantize(tiny_model, asym, alloc)
    ql = qmodel.unet.layers[layer]
    assert ql.weight_grid == "asymmetric"
    assert torch.unique(ql.quantized_weight(3)[0]).numel() == 8  # 2^3 levels, not the narrow grid's 7
    measured = dadq.measure_distortion(tiny_model, asym, alloc, qmodel)
    assert np.allclose(measured, asym.d_w[:, 0, 0], rtol=1e-5, atol=1e-9)
    if rounding == "rtn":  # round to nearest needs no calibration: the allocation alone carries the grid
        alone = dadq.quantize(tiny_model, allocation=alloc).unet.layers[layer]
        assert torch.equal(alone.quantized_weight(3), ql.quantized_weight(3))
    assert not torch.equal(ql.quantized_weight(3), quantize_weight(ql.weight, 3))
