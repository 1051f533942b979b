"""Calibration inputs per timestep group, and activation statistics.

Calibration x_t come from the FP model's own DDIM trajectories (fixed seed), so no dataset is
needed: for group g, each of the N trajectories contributes its x_t at one of its DDIM steps whose
timestep lies in g, drawn uniformly.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from .groups import TimestepGroups
from .models import DiffusionModel

HIST_BINS = 64


@torch.no_grad()
def calibration_inputs(model: DiffusionModel, groups: TimestepGroups, n_per_group: int = 16, seed: int = 0,
                       steps: int | None = None, progress=None) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t [G, N, C, H, W] and t [G, N] (int64) from N seeded FP DDIM trajectories.

    steps: DDIM steps of the trajectories (default max(100, 2G), capped at T), enough for every
    group to hold at least one step.
    """
    from diffusers import DDIMScheduler

    if n_per_group < 1:
        raise ValueError(f"calib_per_group={n_per_group}: use at least 1 calibration sample per group.")
    T = model.num_timesteps
    if groups.num_timesteps != T:
        raise ValueError(f"groups cover {groups.num_timesteps} timesteps but the model has T={T}.")
    steps = min(T, steps or max(100, 2 * groups.num_groups))
    sched = DDIMScheduler.from_config(model.scheduler.config)
    sched.set_timesteps(steps)
    ts = sched.timesteps.numpy()
    step_groups = groups.group_of(ts)
    missing = sorted(set(range(groups.num_groups)) - set(np.atleast_1d(step_groups).tolist()))
    if missing:
        raise ValueError(f"DDIM-{steps} has no step in groups {missing}; raise the calibration steps.")
    rng = np.random.default_rng(seed)
    # pick[g, i]: which step of trajectory i serves group g
    pick = np.stack([rng.choice(np.flatnonzero(step_groups == g), size=n_per_group) for g in range(groups.num_groups)])
    gen = torch.Generator().manual_seed(seed)
    c, h, w = model.sample_shape
    x = torch.randn((n_per_group, c, h, w), generator=gen)
    dev = model.device
    out_x = torch.empty((groups.num_groups, n_per_group, c, h, w))
    out_t = torch.empty((groups.num_groups, n_per_group), dtype=torch.long)
    for k, t in enumerate(tqdm(ts, desc="calibration trajectories", leave=False)):
        for g in range(groups.num_groups):
            hit = np.flatnonzero(pick[g] == k)
            if hit.size:
                out_x[g, hit] = x[hit]
                out_t[g, hit] = int(t)
        eps = model.eps(x.to(dev), torch.full((n_per_group,), int(t), device=dev)).cpu()
        x = sched.step(eps, int(t), x, eta=0.0).prev_sample
        if progress is not None:
            progress((k + 1) / len(ts), f"calibration trajectories: step {k + 1}/{len(ts)}")
    return out_x, out_t


def histogram(values: torch.Tensor, bins: int = HIST_BINS) -> tuple[np.ndarray, float, float]:
    """Density histogram of all values over their own [min, max]: (density [bins], min, max)."""
    v = values.detach().float().flatten().cpu()
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        hi = lo + 1e-6
    counts = torch.histc(v, bins=bins, min=lo, max=hi).numpy().astype(np.float64)
    density = counts / max(counts.sum(), 1.0) / ((hi - lo) / bins)
    return density, lo, hi
