"""Train the FID feature network (dadq.features.MnistFeatureNet) and build the FID reference statistics.

Writes, each atomically, into --out (default assets/default/):
  featurenet.safetensors          classifier weights (metadata: arch, feature_dim, input range, accuracy)
  fid_reference_mnist.safetensors feature mean/cov (float64) and count of the 10k MNIST test images
  featurenet.json                 model card: accuracy, seed, epochs, wall time, command, sha256s

Usage:  python -m scripts.train_featurenet [--seed 0] [--epochs 4] [--out assets/default] [--data DIR]
Takes about 3 minutes on one CPU core (--threads 1). Refuses to write assets if test accuracy < --min-accuracy.
"""
from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from dadq import metrics
from dadq.data import load_dataset, to_model_range
from dadq.features import ARCH, MnistFeatureNet, file_sha256, weights_sha256
from dadq.io import atomic_path, write_json
from dadq.models import DEFAULT_MODEL_DIR


def random_shift(x: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image [B, 1, H, W] by its own random (dy, dx) in [-max_shift, max_shift], zero fill."""
    b, _, h, w = x.shape
    s = max_shift
    padded = F.pad(x, (s, s, s, s))
    dy = torch.randint(0, 2 * s + 1, (b,), generator=gen)
    dx = torch.randint(0, 2 * s + 1, (b,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # [B, H, 1]
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # [B, 1, W]
    return padded[torch.arange(b)[:, None, None], 0, rows, cols][:, None]


@torch.no_grad()
def accuracy(net: MnistFeatureNet, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    net.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((net(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    return correct / len(x)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3, help="peak Adam learning rate (one-cycle schedule)")
    ap.add_argument("--max-shift", type=int, default=2, help="random translation augmentation in pixels (0 = off)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (the machine is shared)")
    ap.add_argument("--min-accuracy", type=float, default=0.99, help="refuse to write assets below this")
    ap.add_argument("--out", type=Path, default=DEFAULT_MODEL_DIR)
    ap.add_argument("--data", default=None, metavar="DIR",
                    help="folder holding mnist/ (default: $DADQ_DATA, else ../shared/data; the test split also ships "
                         "in assets/data)")
    ap.add_argument("--download", action="store_true",
                    help="fetch MNIST from its public mirror (sha256 checked) if it is found nowhere")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    t0 = time.time()

    xtr_u8, ytr_u8 = load_dataset("mnist", "train", data_root=args.data, download=args.download)
    xte_u8, yte_u8 = load_dataset("mnist", "test", data_root=args.data, download=args.download)
    # The feature net's input convention is [0, 1] floats: pixels / 255.
    xtr = torch.from_numpy(xtr_u8).float().div_(255.0)[:, None]
    ytr = torch.from_numpy(ytr_u8.astype(np.int64))
    xte = torch.from_numpy(xte_u8).float().div_(255.0)[:, None]
    yte = torch.from_numpy(yte_u8.astype(np.int64))

    net = MnistFeatureNet()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    steps_per_epoch = (len(xtr) + args.batch_size - 1) // args.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs,
                                                steps_per_epoch=steps_per_epoch)
    gen = torch.Generator().manual_seed(args.seed)
    history = []
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(xtr), generator=gen)
        total_loss, seen = 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}", mininterval=5.0)
        for step in bar:
            idx = perm[step * args.batch_size:(step + 1) * args.batch_size]
            xb, yb = xtr[idx], ytr[idx]
            if args.max_shift > 0:
                xb = random_shift(xb, args.max_shift, gen)
            loss = F.cross_entropy(net(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += float(loss) * len(idx)
            seen += len(idx)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{total_loss / seen:.4f}")
        acc = accuracy(net, xte, yte)
        history.append({"epoch": epoch + 1, "train_loss": total_loss / seen, "test_accuracy": acc,
                        "elapsed_s": round(time.time() - t0, 1)})
        print(f"epoch {epoch + 1}: train loss {total_loss / seen:.4f}  test accuracy {acc:.4%}  "
              f"({time.time() - t0:.0f}s)", flush=True)

    acc = history[-1]["test_accuracy"]
    if acc < args.min_accuracy:
        print(f"test accuracy {acc:.4%} < {args.min_accuracy:.2%}: not writing assets. "
              "Train longer (--epochs) or change --seed.", file=sys.stderr)
        return 1

    from safetensors.torch import save_file

    net.eval()
    out = args.out
    net_path = out / "featurenet.safetensors"
    ref_path = out / "fid_reference_mnist.safetensors"
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    wsha = weights_sha256(state)
    with atomic_path(net_path) as tmp:
        save_file(state, str(tmp), metadata={
            "arch": ARCH, "feature_dim": str(net.feature_dim), "num_classes": "10",
            "input": "float [N, 1, 28, 28] in [0, 1] (MNIST pixels / 255)",
            "test_accuracy": f"{acc:.6f}", "seed": str(args.seed), "epochs": str(args.epochs),
            "weights_sha256": wsha,
        })
    print(f"wrote {net_path}", flush=True)

    ref_meta = metrics.save_reference_stats(
        ref_path, torch.from_numpy(to_model_range(xte_u8)), feature="mnist", feature_net=net_path,
        metadata={"dataset": "mnist", "split": "test"})
    print(f"wrote {ref_path}", flush=True)

    # Sanity scores, recorded in the model card: real held-out digits should score low, noise high.
    train_imgs = torch.from_numpy(to_model_range(xtr_u8[:2000]))
    noise = torch.randn(2000, 1, 28, 28, generator=gen).clamp(-1, 1)
    sanity = {
        "fid_mnist_train_2000_vs_reference": metrics.fid(train_imgs, ref_path, feature_net=net_path),
        "fid_gaussian_noise_2000_vs_reference": metrics.fid(noise, ref_path, feature_net=net_path),
    }
    print(json.dumps(sanity), flush=True)

    card = {
        "what": "FID feature network: small MNIST classifier; its 128-d penultimate features feed "
                "torchmetrics FrechetInceptionDistance. Scores are 'FID (MNIST-classifier features, not Inception)'.",
        "arch": ARCH,
        "feature_dim": net.feature_dim,
        "parameters": sum(p.numel() for p in net.parameters()),
        "test_accuracy": acc,
        "test_set": "MNIST t10k, 10000 images",
        "seed": args.seed,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "optimizer": f"Adam, one-cycle lr max {args.lr}",
        "augmentation": f"random translation +-{args.max_shift} px" if args.max_shift else "none",
        "history": history,
        "wall_time_s": round(time.time() - t0, 1),
        "threads": args.threads,
        "command": "python -m scripts.train_featurenet " + " ".join(
            shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])),
        "torch": torch.__version__,
        "python": platform.python_version(),
        # weights_sha256 hashes the tensors only and is reproducible; the file hash also covers the
        # safetensors header, whose metadata order varies between runs.
        "featurenet_weights_sha256": wsha,
        "featurenet_file_sha256": file_sha256(net_path),
        "reference": {"file": ref_path.name, "file_sha256": file_sha256(ref_path),
                      **{k: v for k, v in ref_meta.items() if k != "settings"}},
        "fid_settings": metrics.FID_SETTINGS["mnist"],
        "sanity": sanity,
    }
    write_json(out / "featurenet.json", card)
    print(f"wrote {out / 'featurenet.json'}  (test accuracy {acc:.4%}, {card['wall_time_s']:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
