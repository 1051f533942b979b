"""Train the embedded default DDPM (a ~1M-parameter diffusers UNet2DModel) on MNIST or Fashion-MNIST.

    python -m scripts.train_default --dataset mnist --steps 8000 --out assets/default

Reads the IDX .gz files with numpy (``--data DIR``, else $DADQ_DATA, else ../shared/data; ``--download``
fetches them; see dadq.data), trains with AdamW and EMA weights, keeps a
resumable checkpoint (``--resume``), and writes the diffusers ``save_pretrained`` layout (safetensors)
plus a model card and an 8x8 sample grid into ``--out``.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dadq.data import load_dataset, to_model_range
from dadq.io import atomic_path, write_text
from dadq.models import DEFAULT_UNET_CONFIG, device_name


def build_unet(config: dict | None = None):
    from diffusers import UNet2DModel

    return UNet2DModel(**(config or DEFAULT_UNET_CONFIG))


def build_ema(parameters, decay: float, warmup: bool = True, foreach: bool = False):
    """diffusers' EMAModel over ``parameters``. warmup: decay 1 - (1 + step)^(-2/3), capped at
    ``decay`` (for training from random weights); without it the decay is ``decay`` from the first
    step: min_decay pins it, since diffusers' non-warm-up path still ramps (1 + step) / (10 + step)."""
    from diffusers.training_utils import EMAModel

    if warmup:
        return EMAModel(parameters, decay=decay, use_ema_warmup=True, power=2 / 3, foreach=foreach)
    return EMAModel(parameters, decay=decay, min_decay=decay, foreach=foreach)


def build_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                         clip_sample=True, prediction_type="epsilon")


def save_grid(images: np.ndarray, path: Path, nrow: int = 8) -> None:
    """images: float [N, 1, H, W] in [-1, 1] -> one PNG grid."""
    from PIL import Image

    n, _, h, w = images.shape
    ncol = math.ceil(n / nrow)
    grid = np.zeros((ncol * (h + 2) + 2, nrow * (w + 2) + 2), dtype=np.uint8)
    u8 = ((images[:, 0].clip(-1, 1) + 1) * 127.5).round().astype(np.uint8)
    for i in range(n):
        r, c = divmod(i, nrow)
        grid[2 + r * (h + 2):2 + r * (h + 2) + h, 2 + c * (w + 2):2 + c * (w + 2) + w] = u8[i]
    with atomic_path(path) as tmp:
        Image.fromarray(grid).save(tmp, format="png")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=["mnist", "fashion-mnist"], default="mnist")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="folder holding mnist/ and fashion-mnist/ (default: $DADQ_DATA, else ../shared/data)")
    p.add_argument("--download", action="store_true",
                   help="fetch the dataset from its public mirror (sha256 checked) if it is found nowhere")
    p.add_argument("--split", choices=["train", "test"], default="train",
                   help="the split to train on: train (60k, the default) or test (10k, shipped in the repo; for tests)")
    p.add_argument("--steps", type=int, default=8000, help="optimizer steps")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--no-ema-warmup", action="store_true",
                   help="EMA at the full --ema-decay from the first step. The warm-up (decay 1-(1+step)^-2/3, "
                        "still 0.9975 at step 8000) suits random weights; --init-from weights are already an "
                        "average, and the warm-up shortens the averaging window of a fine-tune")
    p.add_argument("--out", default="assets/default")
    p.add_argument("--checkpoint", default=None, help="resumable checkpoint path (default: <out>/../.ckpt-<dataset>.pt)")
    p.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    p.add_argument("--init-from", default=None,
                   help="start from the (EMA) weights of a saved pipeline folder, e.g. assets/default, "
                        "with a fresh optimizer; its training.json history is carried into the card")
    p.add_argument("--max-minutes", type=float, default=None, help="stop early after this wall time, then save")
    p.add_argument("--tiny", action="store_true", help="a tiny UNet for tests")
    p.add_argument("--grid-steps", type=int, default=100, help="DDIM steps for the sample grid (0: no grid)")
    p.add_argument("--bf16", action="store_true",
                   help="bfloat16 autocast for the forward pass (weights, EMA and loss stay float32); faster "
                        "per step on CPUs with AVX512-BF16")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda; the shipped weights are float32 either way")
    args = p.parse_args(argv)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is visible to torch; leave out --device to train on the CPU.")

    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    ckpt = Path(args.checkpoint) if args.checkpoint else out.parent / f".ckpt-{args.dataset}.pt"
    log_path = out / "train.log"
    out.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    images, _ = load_dataset(args.dataset, args.split, data_root=args.data, download=args.download)
    data = torch.from_numpy(to_model_range(images)).to(dev)

    config = dict(DEFAULT_UNET_CONFIG)
    if args.tiny:
        config.update(block_out_channels=(8, 16, 16), norm_num_groups=4, attention_head_dim=8)
    unet = build_unet(config)
    unet.to(dev)
    scheduler = build_scheduler()
    step, elapsed, losses = 0, 0.0, []
    history = []
    if args.init_from and args.resume:
        raise SystemExit("--init-from and --resume exclude each other: --resume already restores weights.")
    if args.init_from:
        src = Path(args.init_from)
        weights_file = src / "unet" / "diffusion_pytorch_model.safetensors"
        if not weights_file.exists():
            raise SystemExit(f"--init-from: no {weights_file}; pass a folder written by this script.")
        from safetensors.torch import load_file

        try:
            unet.load_state_dict(load_file(str(weights_file), device=str(dev)))
        except RuntimeError as e:
            raise SystemExit(f"--init-from {src}: its UNet does not match this config ({str(e).splitlines()[0]}); "
                             "drop --tiny or pass a folder trained with the same config.") from None
        prior = src / "training.json"
        if prior.exists():
            old = json.loads(prior.read_text())
            history = old.get("history", []) + [{k: old[k] for k in ("command", "steps", "batch", "lr", "wall_time_s",
                                                                      "final_loss_last500", "unet_sha256", "device") if k in old}]
    # built after --init-from so that the EMA starts from the loaded weights
    opt = torch.optim.AdamW(unet.parameters(), lr=args.lr, weight_decay=0.0, fused=dev.type == "cuda")
    ema = build_ema(unet.parameters(), args.ema_decay, warmup=not args.no_ema_warmup, foreach=dev.type == "cuda")
    if args.resume:
        if not ckpt.exists():
            raise SystemExit(f"--resume: no checkpoint at {ckpt}; run without --resume first.")
        state = torch.load(ckpt, map_location=dev, weights_only=True)
        unet.load_state_dict(state["unet"])
        opt.load_state_dict(state["opt"])
        ema.load_state_dict(state["ema"])
        step, elapsed, losses = int(state["step"]), float(state["elapsed"]), list(state["losses"])
        rng = np.random.default_rng([args.seed, step])
        torch.manual_seed(args.seed + step)

    def save_ckpt():
        with atomic_path(ckpt) as tmp:
            torch.save({"unet": unet.state_dict(), "opt": opt.state_dict(), "ema": ema.state_dict(),
                        "step": step, "elapsed": elapsed, "losses": losses}, tmp)

    n_params = sum(p.numel() for p in unet.parameters())
    warmup = min(500, max(1, args.steps // 20))
    sched = lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps)))  # noqa: E731
    t0 = time.time() - elapsed
    unet.train()
    bar = tqdm(total=args.steps, initial=step, desc=f"train {args.dataset}", unit="step")
    with open(log_path, "a") as log:
        log.write(f"# start step={step} params={n_params} args={vars(args)}\n")
        while step < args.steps:
            idx = torch.from_numpy(rng.integers(0, len(data), args.batch)).to(dev)
            x0 = data[idx]
            noise = torch.randn_like(x0)
            t = torch.randint(0, scheduler.config.num_train_timesteps, (args.batch,), device=dev)
            xt = scheduler.add_noise(x0, noise, t)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
                pred = unet(xt, t).sample
            loss = torch.nn.functional.mse_loss(pred.float(), noise)
            for g in opt.param_groups:
                g["lr"] = args.lr * sched(step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
            opt.step()
            ema.step(unet.parameters())
            step += 1
            losses.append(loss.detach())  # a float() here would sync the GPU every step
            bar.update(1)
            if step % 50 == 0:
                losses[-50:] = [float(v) for v in losses[-50:]]
                recent = float(np.mean(losses[-200:]))
                bar.set_postfix(loss=f"{recent:.4f}")
                log.write(f"step {step} loss {recent:.5f} elapsed {time.time() - t0:.0f}s\n")
                log.flush()
            if step % 250 == 0:
                elapsed = time.time() - t0
                save_ckpt()
            if args.max_minutes and time.time() - t0 > args.max_minutes * 60:
                log.write(f"# stopping early at step {step}: --max-minutes {args.max_minutes}\n")
                break
    bar.close()
    losses = [float(v) for v in losses]
    elapsed = time.time() - t0
    save_ckpt()

    # Ship the EMA weights in the DDPMPipeline.save_pretrained layout.
    from diffusers import DDPMPipeline

    ema.copy_to(unet.parameters())
    unet.to("cpu").eval()
    pipe = DDPMPipeline(unet=unet, scheduler=scheduler)
    pipe.save_pretrained(out, safe_serialization=True)
    weights = out / "unet" / "diffusion_pytorch_model.safetensors"

    final_loss = float(np.mean(losses[-500:])) if losses else float("nan")
    grid_note = ""
    if args.grid_steps:
        from dadq.sampling import sample

        imgs = sample(unet, scheduler, n=64, steps=args.grid_steps, seed=args.seed).numpy()
        save_grid(imgs, out / "samples.png")
        grid_note = f"\n![samples](samples.png)\n\n8×8 grid: DDIM-{args.grid_steps}, η=0, seed {args.seed}, EMA weights.\n"
    cmd = "python -m scripts.train_default " + " ".join(sys.argv[1:] if argv is None else argv)
    meta = {
        "dataset": args.dataset, "split": args.split, "command": cmd, "seed": args.seed, "steps": step, "batch": args.batch,
        "lr": args.lr, "ema_decay": args.ema_decay, "ema_warmup": not args.no_ema_warmup, "bf16": args.bf16, "final_loss_last500": final_loss,
        "wall_time_s": round(elapsed, 1), "params": n_params, "unet_sha256": sha256_of(weights),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "history": history,
        "device": device_name(dev),
    }
    with atomic_path(out / "training.json") as tmp:
        tmp.write_text(json.dumps(meta, indent=2) + "\n")
    write_text(out / "README.md", model_card(meta, grid_note))
    print(json.dumps(meta, indent=2))
    return 0


def history_rows(history: list[dict]) -> str:
    """Earlier runs this one continued from (--init-from), oldest first, as a markdown list."""
    if not history:
        return ""
    lines = ["", "Continued (`--init-from`, fresh optimizer) from earlier runs, oldest first:", ""]
    for h in history:
        where = on_gpu(h.get("device", "cpu"))
        lines.append(f"- `{h.get('command', '?')}`: {h.get('steps', '?')} × {h.get('batch', '?')} steps, "
                     f"lr {h.get('lr', '?')}, {h.get('wall_time_s', 0) / 60:.1f} min{where}, "
                     f"final loss {h.get('final_loss_last500', float('nan')):.4f}")
    total_steps = sum(h.get("steps", 0) for h in history)
    total_min = sum(h.get("wall_time_s", 0) for h in history) / 60
    lines.append(f"- earlier runs in all: {total_steps} steps, {total_min:.1f} min")
    return "\n".join(lines) + "\n"


def on_gpu(device: str) -> str:
    """" on one NVIDIA H200 GPU" for a recorded device name; "" for "cpu"."""
    return "" if device == "cpu" else f" on one {device} GPU"


def where_trained(meta: dict) -> str:
    return on_gpu(meta.get("device", "cpu")).removeprefix(" on ") or f"{meta['threads']} CPU threads"


def model_card(meta: dict, grid_note: str) -> str:
    return f"""# dadq default model: DDPM on {meta['dataset']}

A diffusers `UNet2DModel` ({meta['params']:,} parameters, 1×28×28) with a `DDPMScheduler`
(T = 1000, linear betas 1e-4 … 0.02), trained by `scripts/train_default.py` on the
{meta['dataset']} {"test set (10k" if meta.get("split") == "test" else "training set (60k"} images, scaled to [-1, 1]). EMA weights are shipped.

| field | value |
|---|---|
| command | `{meta['command']}` |
| seed | {meta['seed']} |
| steps × batch | {meta['steps']} × {meta['batch']} |
| learning rate | {meta['lr']} (AdamW, warm-up then cosine) |
| precision | {'bfloat16 autocast forward, float32 weights, EMA and loss' if meta.get('bf16') else 'float32'} |
| EMA decay | {meta['ema_decay']}{'' if meta.get('ema_warmup', True) else ' from the first step (no warm-up)'} |
| final loss (mean of last 500 steps) | {meta['final_loss_last500']:.4f} |
| wall time | {meta['wall_time_s'] / 60:.1f} min on {where_trained(meta)} (torch {meta['torch']}) |
| sha256 of `unet/diffusion_pytorch_model.safetensors` | `{meta['unet_sha256']}` |
{history_rows(meta.get('history', []))}{grid_note}
Quality measures (FID with MNIST-classifier features, classifier confidence) are appended by
`scripts/evaluate_default.py` below this line.
"""


if __name__ == "__main__":
    sys.exit(main())
