"""DDPM and DDIM sampling, FP and quantized from identical noise.

The initial noise and every stochastic step draw from one seeded ``torch.Generator`` per call, so
two models sampled with the same seed see exactly the same noise.
"""
from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .models import DiffusionModel


def _sampler_scheduler(model: DiffusionModel, sampler: str, steps: int):
    from diffusers import DDIMScheduler, DDPMScheduler

    if sampler == "ddim":
        sched = DDIMScheduler.from_config(model.scheduler.config)
        sched.set_timesteps(steps)
    elif sampler == "ddpm":
        sched = DDPMScheduler.from_config(model.scheduler.config)
        sched.set_timesteps(steps if steps else model.num_timesteps)
    else:
        raise ValueError(f"unknown sampler {sampler!r}; choose 'ddim' or 'ddpm'.")
    return sched


@torch.no_grad()
def sample(model, scheduler=None, n: int = 16, steps: int = 50, seed: int = 0, sampler: str = "ddim",
           eta: float = 0.0, batch_size: int = 256, progress=None, desc: str = "sampling") -> torch.Tensor:
    """Generate n images, float32 [n, C, H, W] in [-1, 1], on the CPU.

    model: a DiffusionModel (or a bare UNet2DModel with ``scheduler``).
    steps: DDIM steps, or DDPM steps (0 = all T).  eta: DDIM stochasticity (0 = deterministic).
    progress: optional callable(fraction in [0, 1], text) for UIs; a tqdm bar is shown as well.
    """
    if not isinstance(model, DiffusionModel):
        model = DiffusionModel(model, scheduler)
    if n < 1:
        raise ValueError(f"n={n}: ask for at least one sample.")
    if steps < 0 or (sampler == "ddim" and steps < 1) or steps > model.num_timesteps:
        raise ValueError(f"steps={steps} must lie in 1..{model.num_timesteps}.")
    dev = model.device
    gen = torch.Generator().manual_seed(seed)
    c, h, w = model.sample_shape
    x_all = torch.randn((n, c, h, w), generator=gen)
    outs = []
    sched = _sampler_scheduler(model, sampler, steps)
    total = len(sched.timesteps) * ((n + batch_size - 1) // batch_size)
    bar = tqdm(total=total, desc=desc, leave=False, disable=total < 20)
    done = 0
    for start in range(0, n, batch_size):
        x = x_all[start:start + batch_size].to(dev)
        sched = _sampler_scheduler(model, sampler, steps)
        for t in sched.timesteps:
            tt = torch.full((x.shape[0],), int(t), device=dev, dtype=torch.long)
            eps = model.eps(x, tt)
            kw = {"eta": eta} if sampler == "ddim" else {}
            # A CPU generator keeps the noise identical across devices and across FP/quantized runs.
            x = sched.step(eps.cpu(), int(t), x.cpu(), generator=gen, **kw).prev_sample.to(dev)
            done += 1
            bar.update(1)
            if progress is not None:
                progress(done / total, f"{desc}: step {done}/{total}")
        outs.append(x.clamp(-1, 1).float().cpu())
    bar.close()
    return torch.cat(outs)


def sample_pair(model: DiffusionModel, qmodel: DiffusionModel, n: int = 16, steps: int = 50, seed: int = 0,
                sampler: str = "ddim", eta: float = 0.0, batch_size: int = 256, progress=None):
    """FP and quantized images from identical noise: two float32 tensors [n, C, H, W] in [-1, 1]."""
    half = (lambda f, s: progress(0.5 * f, s)) if progress else None
    rest = (lambda f, s: progress(0.5 + 0.5 * f, s)) if progress else None
    fp = sample(model, n=n, steps=steps, seed=seed, sampler=sampler, eta=eta, batch_size=batch_size,
                progress=half, desc="FP sampling")
    q = sample(qmodel, n=n, steps=steps, seed=seed, sampler=sampler, eta=eta, batch_size=batch_size,
               progress=rest, desc="quantized sampling")
    return fp, q
