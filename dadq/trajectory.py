"""Trajectory gain: how far an eps error made at one timestep group's steps moves the final sample.

The profile prices each quantizer by its distortion of one step's eps (D_{g,l}), and the budget scope
'mean' adds those D over groups as if an error cost the same at every step. It does not: the sampler
carries an error made at high noise through every later step, while one made at the last steps barely
moves the image. ``trajectory_gain`` measures the difference, per group g: sample with a small Gaussian
error added to eps at the steps of g only, and divide the final sample's MSE against the clean run from
the same noise by the MSE added to eps. ``allocate(..., group_weights=gain)`` then weighs each group's D
by it, so the pooled knapsack spends bits where the trajectory is sensitive.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch

from .groups import TimestepGroups
from .sampling import sample

GAIN_FILE = "gain.json"  # the gain shipped beside a model, as `dadq gain --out` writes it
# the shipped gains' settings, and the sweeps' gainP rows': DDIM-50, the sampler of the FID rows
GAIN_SETTINGS = dict(n=64, steps=50, sigma=0.01, seed=0)


def trajectory_gain(model, groups: TimestepGroups | int = 10, n: int = GAIN_SETTINGS["n"],
                    steps: int = GAIN_SETTINGS["steps"], seed: int = GAIN_SETTINGS["seed"],
                    sigma: float = GAIN_SETTINGS["sigma"], sampler: str = "ddim", eta: float = 0.0,
                    progress=None) -> np.ndarray:
    """float [G]: the final sample's MSE per unit of eps MSE added at the steps of group g alone.

    groups: a TimestepGroups (or G, equal groups of the model's T). n samples from ``seed``, drawn with
    ``sampler`` at ``steps`` steps (the gain depends on the sampler: measure with the one you deploy).
    sigma: the standard deviation of the added eps error, small so that the response stays about linear
    (the eps MSE added is sigma^2 per element). progress: as in ``sample`` (a callable gets the fraction
    done over the G + 1 runs)."""
    if isinstance(groups, int):
        groups = TimestepGroups(model.num_timesteps, groups)
    if groups.num_timesteps != model.num_timesteps:
        raise ValueError(f"the groups split {groups.num_timesteps} timesteps, the model has {model.num_timesteps}: "
                         "build them from the model's T (or pass G).")
    if not sigma > 0:
        raise ValueError(f"sigma={sigma}: the added eps error needs a positive standard deviation (e.g. 0.01).")
    G = groups.num_groups
    runs = G + 1

    def report(i):
        if not callable(progress):
            return progress
        return lambda f, text: progress((i + f) / runs, f"trajectory gain, run {i + 1}/{runs}: {text}")

    kw = dict(n=n, steps=steps, seed=seed, sampler=sampler, eta=eta)
    clean = sample(model, progress=report(0), desc="trajectory gain: clean", **kw)
    gain = np.zeros(G)
    for g in range(G):
        noise = torch.Generator().manual_seed(seed + 1 + g)  # apart from the sampler's own generator
        perturbed = copy.copy(model)  # shares the network; only this copy's eps adds the error
        perturbed.eps = _with_error(model.eps, groups, g, sigma, noise)
        x = sample(perturbed, progress=report(1 + g), desc=f"trajectory gain: group {g}", **kw)
        gain[g] = float((x - clean).pow(2).mean()) / sigma ** 2
    return gain


def _with_error(eps_fn, groups: TimestepGroups, g: int, sigma: float, gen: torch.Generator):
    def eps(x, t, **kw):
        e = eps_fn(x, t, **kw)
        at = (groups.group_of(t.cpu()) == g).to(e.device)  # [N]: the samples whose step lies in group g
        if at.any():
            err = sigma * torch.randn(e.shape, generator=gen).to(e.device, e.dtype)
            e = e + err * at.view(-1, *[1] * (e.dim() - 1))
        return e
    return eps


def gain_record(model, groups: TimestepGroups, gain: np.ndarray, n: int, steps: int, sampler: str, seed: int,
                sigma: float) -> dict:
    """The JSON a gain is stored as (``dadq gain --out``, the file shipped beside a model): the gain [G]
    and what it was measured on, so that ``load_gain`` can refuse it for another model or grouping."""
    return {"gain": [float(v) for v in gain], "groups": groups.num_groups, "num_timesteps": model.num_timesteps,
            "n": n, "steps": steps, "sampler": sampler, "seed": seed, "sigma": sigma, "model": model.source,
            "fingerprint": model.fingerprint()}


def load_gain(path, groups: TimestepGroups | None = None, model=None) -> tuple[np.ndarray, dict]:
    """(gain float [G], the record) from a gain JSON; with ``groups``/``model``, checked against them
    (its G and T, and the model's fingerprint where the file names one)."""
    path = Path(path)
    try:
        rec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable gain JSON ({type(e).__name__}); write one with "
                         "`python -m dadq gain --out FILE`.") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("gain"), list):
        raise ValueError(f"{path}: not a gain file of `python -m dadq gain --out` (no 'gain' list).")
    gain = np.asarray(rec["gain"], dtype=np.float64)
    if groups is not None:
        G, T = groups.num_groups, groups.num_timesteps
        if gain.shape != (G,) or rec.get("num_timesteps", T) != T:
            raise ValueError(f"{path}: a gain of {gain.size} groups over {rec.get('num_timesteps')} timesteps, but the "
                             f"profile has {G} groups over {T}: measure it for these groups "
                             f"(`python -m dadq gain --groups {G}`).")
    if model is not None and rec.get("fingerprint") not in (None, model.fingerprint()):
        raise ValueError(f"{path}: measured on model {rec.get('model')!r} (fingerprint {rec.get('fingerprint')}), "
                         f"not on the loaded one ({model.fingerprint()}): measure the gain of this model.")
    return gain, rec
