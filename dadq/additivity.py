"""Additivity check: the measured output distortion of a whole allocation against the predicted
sum of per-quantizer distortions, per timestep group, on the profile's calibration inputs."""
from __future__ import annotations

import numpy as np
import torch

from .calibrate import profile_conditioning
from .distortion import distortion
from .models import DiffusionModel
from .quant import quantize


@torch.no_grad()
def measure_distortion(model: DiffusionModel, profile, allocation, qmodel: DiffusionModel | None = None) -> np.ndarray:
    """Measured D per group, float [G]: eps of the quantized model against FP on the x_t the curves were measured on
    (the calibration inputs, or the profile's held-out draw)."""
    qmodel = qmodel or quantize(model, profile, allocation)
    dev = model.device
    out = np.zeros(profile.num_groups)
    cond = profile_conditioning(model, profile, curves=True)  # conditional models: the profile's labels and guidance
    metric = profile.settings()["metric"]  # measured as the curves were, or the check compares unlike things
    xs, ts, _ = profile.curve_inputs()
    for g in range(profile.num_groups):
        x = torch.from_numpy(xs[g]).to(dev)
        t = torch.from_numpy(ts[g]).to(dev)
        out[g] = distortion(model.eps(x, t, **cond), qmodel.eps(x, t, **cond), metric=metric)
    return out


def additivity(model: DiffusionModel, profile, allocation) -> dict:
    """{'predicted': [G], 'measured': [G], 'ratio': measured/predicted [G], 'correlation': float}."""
    measured = measure_distortion(model, profile, allocation)
    pred = np.asarray(allocation.predicted, dtype=float)
    corr = float(np.corrcoef(pred, measured)[0, 1]) if len(pred) > 1 and pred.std() > 0 and measured.std() > 0 else float("nan")
    return {"predicted": pred, "measured": measured, "ratio": measured / np.maximum(pred, 1e-300),
            "correlation": corr}
