"""Calibration inputs per timestep group, and activation statistics.

Calibration x_t come from the FP model's own DDIM trajectories (fixed seed), so no dataset is
needed: for group g, each of the N trajectories contributes its x_t at one of its DDIM steps whose
timestep lies in g, drawn uniformly.

Conditional models (``calibration_conditioning``): trajectory i keeps one condition throughout, so
every group sees the same N conditions. Class labels are stratified uniform over the classes (N
distinct random classes when N <= K, else whole random permutations of the K classes, repeated); a
UNet2DConditionModel cycles through the model's ``encoder_hidden_states`` the same way. The
trajectories run as sampling runs them: under classifier-free guidance at the profile's
guidance scale (default: the model's), and every calibration evaluation is one guided call, i.e.
both branches in one batch: the N conditional inputs and the same N x_t with the null class
(or null encoder_hidden_states). So each layer's activations are calibrated on both branches (half
each), and D is measured on the guided eps, the output the sampler uses (``dadq.profile``).
Without guidance only the conditional branch runs, as it does when sampling.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from .groups import TimestepGroups
from .models import DiffusionModel

HIST_BINS = 64


def calibration_conditioning(model: DiffusionModel, n: int, seed: int = 0, guidance_scale=None) -> tuple[dict, dict]:
    """The conditioning of the N calibration trajectories: (kwargs for ``model.eps``, description for the
    profile's meta["calibration"]). guidance_scale None: the model's default (``model.guidance_scale``)."""
    s = model.check_guidance(model.guidance_scale if guidance_scale is None else guidance_scale)
    rng = np.random.default_rng([seed, 20])

    def stratified(k: int) -> np.ndarray:
        if n <= k:
            return rng.choice(k, size=n, replace=False)
        return np.concatenate([rng.permutation(k) for _ in range(-(-n // k))])[:n]

    kwargs: dict = {"guidance_scale": s}
    desc: dict = {"conditioning": model.conditioning, "guidance_scale": s,
                  "branches": ["conditional", "null"] if s is not None else
                  (["conditional"] if model.conditioning else ["unconditional"]),
                  "distortion_on": "guided eps = eps_null + s (eps_cond - eps_null)" if s is not None else "eps",
                  "trajectories": "DDIM, eta=0" + (f", guided at s={s}" if s is not None else "")}
    if model.conditioning == "class":
        y = stratified(model.num_classes)
        kwargs["class_labels"] = torch.from_numpy(y).long()
        desc.update(classes=[int(v) for v in y], num_classes=model.num_classes, null_class=model.null_class,
                    labels="stratified uniform over the classes, one per trajectory (the same in every group)")
    elif model.conditioning == "text":
        if model.encoder_hidden_states is None:
            raise ValueError("calibrating a UNet2DConditionModel needs conditions: pass load_model(..., "
                             "encoder_hidden_states=[K, S, D]) (and null_encoder_hidden_states for guidance).")
        idx = stratified(model.encoder_hidden_states.shape[0])
        kwargs["encoder_hidden_states"] = model.encoder_hidden_states[torch.from_numpy(idx)]
        desc.update(conditions=[int(v) for v in idx], num_conditions=int(model.encoder_hidden_states.shape[0]),
                    labels="indices into the model's encoder_hidden_states, stratified uniform")
    return kwargs, desc


def profile_conditioning(model: DiffusionModel, prof, curves: bool = False) -> dict:
    """The ``model.eps`` kwargs a profile's calibration inputs were run with (its meta["calibration"]); curves:
    those of the inputs its curves were measured on (``Profile.curve_inputs``: a held-out draw has its own labels)."""
    cal = prof.meta.get("calibration")
    # a profile without the record predates conditional models; one that records no guidance ran unguided (s = 1)
    s = None if cal is None else (cal.get("guidance_scale") or 1.0)
    seed = prof.curve_inputs()[2] if curves else int(prof.meta.get("seed", 0))
    kwargs, _ = calibration_conditioning(model, int(prof.calib_x.shape[1]), seed, s)
    return kwargs


@torch.no_grad()
def calibration_inputs(model: DiffusionModel, groups: TimestepGroups, n_per_group: int = 16, seed: int = 0,
                       steps: int | None = None, progress=None, guidance_scale=None) -> tuple[torch.Tensor, torch.Tensor]:
    """x_t [G, N, C, H, W] and t [G, N] (int64) from N seeded FP DDIM trajectories.

    steps: DDIM steps of the trajectories (default max(100, 2G), capped at T), enough for every
    group to hold at least one step. Conditional models: trajectory i runs with condition i of
    ``calibration_conditioning(model, N, seed, guidance_scale)``.
    """
    from diffusers import DDIMScheduler

    if n_per_group < 1:
        raise ValueError(f"calib_per_group={n_per_group}: use at least 1 calibration sample per group.")
    T = model.num_timesteps
    if groups.num_timesteps != T:
        raise ValueError(f"groups cover {groups.num_timesteps} timesteps but the model has T={T}.")
    steps = min(T, steps or max(100, 2 * groups.num_groups))
    sched = DDIMScheduler.from_config(model.sampler_config())
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
    cond, _ = calibration_conditioning(model, n_per_group, seed, guidance_scale)
    out_x = torch.empty((groups.num_groups, n_per_group, c, h, w))
    out_t = torch.empty((groups.num_groups, n_per_group), dtype=torch.long)
    for k, t in enumerate(tqdm(ts, desc="calibration trajectories", leave=False)):
        for g in range(groups.num_groups):
            hit = np.flatnonzero(pick[g] == k)
            if hit.size:
                out_x[g, hit] = x[hit]
                out_t[g, hit] = int(t)
        eps = model.eps(x.to(dev), torch.full((n_per_group,), int(t), device=dev), **cond).cpu()
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


@torch.no_grad()
def layer_inputs(unet: torch.nn.Module, names: list[str], x: torch.Tensor, t: torch.Tensor) -> dict[str, list[torch.Tensor]]:
    """Each named layer's FP input, one tensor per group, on calibration inputs x [G, N, C, H, W], t [G, N]."""
    seen = {n: [] for n in names}
    hooks = [unet.get_submodule(n).register_forward_pre_hook(lambda m, a, n=n: seen[n].append(a[0])) for n in names]
    try:
        for g in range(x.shape[0]):
            unet(x[g], t[g])
    finally:
        for h in hooks:
            h.remove()
    return seen
