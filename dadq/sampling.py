"""DDPM and DDIM sampling, FP and quantized from identical noise.

The initial noise and every stochastic step draw from one seeded ``torch.Generator`` per call, so
two models sampled with the same seed see exactly the same noise.
"""
from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm

from .models import DiffusionModel
from .parallel import side_by_side


def _sampler_scheduler(model: DiffusionModel, sampler: str, steps: int):
    from diffusers import DDIMScheduler, DDPMScheduler

    config = model.sampler_config()
    if sampler == "ddim":
        sched = DDIMScheduler.from_config(config)
        sched.set_timesteps(steps)
    elif sampler == "ddpm":
        sched = DDPMScheduler.from_config(config)
        sched.set_timesteps(steps if steps else model.num_timesteps)
    else:
        raise ValueError(f"unknown sampler {sampler!r}; choose 'ddim' or 'ddpm'.")
    return sched


@torch.no_grad()
def sample(model, scheduler=None, n: int = 16, steps: int = 50, seed: int = 0, sampler: str = "ddim",
           eta: float = 0.0, batch_size: int = 256, progress=None, desc: str = "sampling",
           class_labels=None, guidance_scale: float | None = None, encoder_hidden_states=None) -> torch.Tensor:
    """Generate n images, float32 [n, C, H, W] in [-1, 1], on the CPU.

    model: a DiffusionModel (or a bare UNet2DModel with ``scheduler``).
    steps: DDIM steps, or DDPM steps (0 = all T).  eta: DDIM stochasticity (0 = deterministic).
    class_labels: class-conditional models: one int, or n ints (default: 0, 1, ..., K-1, 0, 1, ...).
    guidance_scale: classifier-free guidance eps_null + s (eps_cond - eps_null), both branches in one batch
      (default: the model's own ``model.guidance_scale``; 1: the conditional pass only).
    encoder_hidden_states: a UNet2DConditionModel's conditions, [n or 1, S, D] (default: its first one).
    progress: None (default): a tqdm bar on stderr for runs of 20 steps or more, as the CLI shows;
      a callable(fraction in [0, 1], text): reports there instead (a UI's progress bar), no tqdm bar;
      False: silent.
    """
    if not isinstance(model, DiffusionModel):
        model = DiffusionModel(model, scheduler)
    if n < 1:
        raise ValueError(f"n={n}: ask for at least one sample.")
    labels = model.check_labels(model.default_labels(n) if class_labels is None else class_labels, n)
    ehs = model.check_ehs(encoder_hidden_states, n)
    s = model.check_guidance(model.guidance_scale if guidance_scale is None else guidance_scale)
    if steps < 0 or (sampler == "ddim" and steps < 1) or steps > model.num_timesteps:
        raise ValueError(f"steps={steps} must lie in 1..{model.num_timesteps}.")
    dev = model.device
    gen = torch.Generator().manual_seed(seed)
    c, h, w = model.sample_shape
    x_all = torch.randn((n, c, h, w), generator=gen)
    outs = []
    # DDIM and DDPM steps keep no state between calls, so one scheduler serves every batch.
    sched = _sampler_scheduler(model, sampler, steps)
    total = len(sched.timesteps) * ((n + batch_size - 1) // batch_size)
    bar = tqdm(total=total, desc=desc, leave=False, disable=progress is not None or total < 20)
    done = 0
    for start in range(0, n, batch_size):
        x = x_all[start:start + batch_size].to(dev)
        cond = {"guidance_scale": s}
        if labels is not None:
            cond["class_labels"] = labels[start:start + batch_size]
        if ehs is not None:
            cond["encoder_hidden_states"] = ehs[start:start + batch_size]
        for t in sched.timesteps:
            tt = torch.full((x.shape[0],), int(t), device=dev, dtype=torch.long)
            eps = model.eps(x, tt, **cond)
            kw = {"eta": eta} if sampler == "ddim" else {}
            # A CPU generator keeps the noise identical across devices and across FP/quantized runs.
            x = sched.step(eps.cpu(), int(t), x.cpu(), generator=gen, **kw).prev_sample.to(dev)
            done += 1
            bar.update(1)
            if callable(progress):
                progress(done / total, f"{desc}: step {done}/{total}")
        outs.append(x.clamp(-1, 1).float().cpu())
    bar.close()
    return torch.cat(outs)


def sample_pair(model: DiffusionModel, qmodel: DiffusionModel, n: int = 16, steps: int = 50, seed: int = 0,
                sampler: str = "ddim", eta: float = 0.0, batch_size: int = 256, progress=None,
                parallel: bool | None = None, timings: dict | None = None, class_labels=None,
                guidance_scale: float | None = None, encoder_hidden_states=None):
    """FP and quantized images from identical noise: two float32 tensors [n, C, H, W] in [-1, 1].

    class_labels, guidance_scale, encoder_hidden_states: as in ``sample``; both chains get the same
    labels, conditions and guidance (and the same noise).

    parallel: run the two chains at the same time, each on half of torch's CPU threads. The default
      (None) does so on the CPU with at least 2 threads. A small UNet's convolutions split poorly across
      threads, so two chains side by side finish sooner than one after the other. Each chain then
      equals a plain ``sample`` on that many threads, bit for bit; against a run on all threads only
      float rounding differs (the thread count changes the order of sums; tests bound it by 1e-4).
    progress: as in ``sample``: None, a tqdm bar per chain; a callable(fraction, text), one report for
      the pair and no tqdm bar; False, silent.
    timings: a dict to receive the wall time of each chain in seconds ("fp_s", "quantized_s") and
      whether they ran in parallel ("parallel").
    """
    # bad conditioning is an error here, before either chain starts
    model.check_labels(class_labels, n)
    model.check_ehs(encoder_hidden_states, n)
    model.check_guidance(model.guidance_scale if guidance_scale is None else guidance_scale)
    on_cpu = model.device.type == "cpu" and qmodel.device.type == "cpu"
    threads = torch.get_num_threads()
    if parallel is None:
        parallel = on_cpu and threads >= 2
    frac = [0.0, 0.0]

    def chain(i, m, desc):
        def report(f, text):
            if progress is None:
                return
            frac[i] = f
            # one bar for the pair: sequential chains fill it half by half, parallel ones together
            progress(0.5 * (frac[0] + frac[1]), text)

        t0 = time.perf_counter()
        out = sample(m, n=n, steps=steps, seed=seed, sampler=sampler, eta=eta, batch_size=batch_size,
                     progress=report if callable(progress) else progress, desc=desc, class_labels=class_labels,
                     guidance_scale=guidance_scale, encoder_hidden_states=encoder_hidden_states)
        return out, time.perf_counter() - t0

    if not parallel:
        (fp, t_fp), (q, t_q) = chain(0, model, "FP sampling"), chain(1, qmodel, "quantized sampling")
    else:
        (fp, t_fp), (q, t_q) = side_by_side(lambda: chain(0, model, "FP sampling"),
                                            lambda: chain(1, qmodel, "quantized sampling"))
    if timings is not None:
        timings.update(fp_s=t_fp, quantized_s=t_q, parallel=bool(parallel))
    return fp, q
