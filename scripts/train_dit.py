"""Train the second embedded model: a small class-conditional DiT (diffusers ``DiTTransformer2DModel``)
in pixel space on MNIST, with a null class for classifier-free guidance.

    python scripts/train_dit.py --minutes 80 --out assets/dit            # CPU, one thread
    python scripts/train_dit.py --minutes 30 --device cuda --batch 256    # a GPU: train longer / bigger batch
    python scripts/train_dit.py --resume --minutes 60                     # continue from the checkpoint

The DiT's label embedder (diffusers ``LabelEmbedding``) holds ``num_embeds_ada_norm + 1`` rows when
``class_dropout_prob > 0``: classes 0-9 and the null class 10. In ``train()`` mode diffusers drops each
label to the null class with probability ``class_dropout_prob`` (10%), which trains the unconditional
branch that classifier-free guidance needs.

Training stops by wall time (``--minutes``). Every ``--save-minutes`` the EMA weights are written as a
diffusers folder (``save_pretrained`` into a temp folder, then renamed onto ``<out>/transformer``), the
scheduler config beside it, a resumable checkpoint (``assets/.ckpt-dit.pt``, git-ignored) and a line in
``<out>/train.log``; a stop at any time leaves a usable model.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dadq.data import load_dataset, to_model_range  # noqa: E402
from dadq.io import write_json  # noqa: E402

DIT_CONFIG = dict(
    sample_size=28,
    in_channels=1,
    out_channels=1,
    patch_size=4,
    num_attention_heads=4,
    attention_head_dim=24,  # hidden 96
    num_layers=6,
    num_embeds_ada_norm=10,  # classes 0-9; the null class is index 10 (class_dropout_prob 0.1 in diffusers)
    norm_type="ada_norm_zero",
    activation_fn="gelu-approximate",
)


def build_dit(config: dict | None = None):
    from diffusers import DiTTransformer2DModel

    return DiTTransformer2DModel(**(config or DIT_CONFIG))


def build_scheduler():
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                         clip_sample=True, prediction_type="epsilon")


def save_folder(model, out: Path, name: str = "transformer") -> None:
    """save_pretrained into a temp folder beside ``out/name``, then swap it in by rename."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{name}.tmp-{os.getpid()}"
    old = out / f".{name}.old-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp, safe_serialization=True)
    final = out / name
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=60.0, help="wall-time budget; training stops and saves then")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=int, default=200, help="linear LR warm-up steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--hidden", type=int, default=96)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--depth", type=int, default=6)
    p.add_argument("--patch", type=int, default=4)
    p.add_argument("--class-dropout", type=float, default=0.1,
                   help="probability that a label is replaced by the null class (diffusers' LabelEmbedding)")
    p.add_argument("--out", default="assets/dit")
    p.add_argument("--checkpoint", default=None, help="resumable checkpoint (default assets/.ckpt-dit.pt)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--save-minutes", type=float, default=5.0)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--bench", type=int, default=0, help="time this many steps, print s/step and exit")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    out = Path(args.out)
    ckpt = Path(args.checkpoint) if args.checkpoint else out.parent / ".ckpt-dit.pt"
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    images, labels = load_dataset("mnist", "train")
    data = torch.from_numpy(to_model_range(images)).to(dev)
    targets = torch.from_numpy(labels.astype(np.int64)).to(dev)

    if args.hidden % args.heads:
        raise SystemExit("--hidden must be a multiple of --heads")
    config = dict(DIT_CONFIG, patch_size=args.patch, num_attention_heads=args.heads,
                  attention_head_dim=args.hidden // args.heads, num_layers=args.depth)
    model = build_dit(config).to(dev)
    # diffusers builds each block's LabelEmbedding with class_dropout_prob=0.1 (not a config field)
    for m in model.modules():
        if type(m).__name__ == "LabelEmbedding":
            m.dropout_prob = args.class_dropout
    ema = build_dit(config).to(dev)
    ema.load_state_dict(model.state_dict())
    ema.eval().requires_grad_(False)
    scheduler = build_scheduler()
    acp = scheduler.alphas_cumprod.to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    n_params = sum(p.numel() for p in model.parameters())

    step, elapsed, history = 0, 0.0, []
    if args.resume:
        state = torch.load(ckpt, map_location=dev, weights_only=False)  # our own file
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        step, elapsed, history = state["step"], state["elapsed"], state.get("history", [])
        rng = np.random.default_rng(args.seed + step)
        torch.manual_seed(args.seed + step)

    log_path = out / "train.log"
    out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(msg, flush=True)
        if not args.bench:
            with open(log_path, "a") as f:
                f.write(msg + "\n")

    if not args.bench:
        log(f"# {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} UTC start step {step}: "
            f"{' '.join(sys.argv[1:] if argv is None else argv)}; params {n_params}; config {json.dumps(config)}")

    def save(final: bool = False) -> None:
        save_folder(ema, out, "transformer")
        scheduler.save_pretrained(out / "scheduler")
        write_json(out / "training.json", dict(
            script="scripts/train_dit.py", args=vars(args), config=config, params=n_params, steps=step,
            batch=args.batch, seconds=round(elapsed, 1), seed=args.seed, ema_decay=args.ema_decay,
            class_dropout=args.class_dropout, null_class=config["num_embeds_ada_norm"],
            loss_last=history[-1]["loss"] if history else None, history=history, final=final,
            device=str(dev), threads=args.threads))
        tmp = ckpt.with_suffix(".pt.tmp")
        torch.save(dict(model=model.state_dict(), ema=ema.state_dict(), opt=opt.state_dict(), step=step,
                        elapsed=elapsed, history=history, config=config), tmp)
        os.replace(tmp, ckpt)

    model.train()
    budget = args.minutes * 60.0
    t0 = time.time() - elapsed
    last_save = time.time()
    run_loss, run_n = 0.0, 0
    bench_t = None
    while True:
        if args.bench and step == 3:
            bench_t = time.time()
        if args.bench and step == 3 + args.bench:
            print(f"{(time.time() - bench_t) / args.bench:.3f} s/step; params {n_params}")
            return 0
        elapsed = time.time() - t0
        if (elapsed >= budget and not args.bench) or (args.max_steps and step >= args.max_steps):
            break
        idx = torch.from_numpy(rng.integers(0, data.shape[0], args.batch)).to(dev)
        x0, y = data[idx], targets[idx]
        t = torch.randint(0, 1000, (args.batch,), device=dev)
        noise = torch.randn_like(x0)
        a = acp[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        pred = model(xt, timestep=t, class_labels=y).sample
        loss = torch.nn.functional.mse_loss(pred, noise)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / args.warmup)
        opt.step()
        step += 1
        decay = min(args.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - decay)
        run_loss += loss.item()
        run_n += 1
        if step % args.log_every == 0 and not args.bench:
            elapsed = time.time() - t0
            history.append(dict(step=step, loss=round(run_loss / run_n, 5), seconds=round(elapsed, 1)))
            log(f"step {step} loss {run_loss / run_n:.5f} time {elapsed:.0f}s ({elapsed / 60:.1f} min)")
            run_loss, run_n = 0.0, 0
        if not args.bench and time.time() - last_save >= args.save_minutes * 60:
            save()
            last_save = time.time()
            log(f"saved step {step} -> {out / 'transformer'}")
    elapsed = time.time() - t0
    save(final=True)
    log(f"# done: {step} steps in {elapsed:.0f}s; saved {out / 'transformer'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
