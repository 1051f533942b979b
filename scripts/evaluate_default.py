"""Measure the quality of a trained default model and append it to its model card.

    python -m scripts.evaluate_default                                  # the MNIST default
    python -m scripts.evaluate_default --model assets/fashion --dataset fashion-mnist --quick
    python -m scripts.evaluate_default --only ddim50_5k          # add one long run to quality.json
    python -m scripts.evaluate_default --card-only               # re-render the card from quality.json
    python -m scripts.evaluate_default --import-rows DIR --only ddpm1000_5k  # rows measured elsewhere (a GPU)

Every number is labelled as FID with MNIST-classifier features (not Inception FID). Writes
<model>/quality.json and replaces the "## Quality" section of <model>/README.md. The MNIST card also
shows the held-out Fashion-MNIST model's results, from assets/fashion/quality.json where it exists.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

import dadq
from dadq.data import load_dataset, to_model_range
from dadq.io import write_json, write_text
from dadq.metrics import FID_LABEL, classify, fid
from dadq.models import device_name
from dadq.quant import QuantizedUNet
from scripts.train_default import on_gpu, sha256_of

MARK = "## Quality"
RUNS = ("train_10k_vs_test", "gaussian_noise_1k", "ddim100_1k", "ddim50_1k", "broken_w2_ddim50_1k", "ddim50_5k",
        "ddpm1000_256", "ddpm1000_5k")
LONG_RUNS = ("ddim50_5k", "ddpm1000_256")  # skipped by --quick
GPU_RUNS = ("ddpm1000_5k",)  # hours on a CPU: measured only with --device cuda, or when named in --only
RUN_NAMES = {"train_10k_vs_test": "real training images (sanity: near 0)", "gaussian_noise_1k": "Gaussian noise",
             "ddim100_1k": "model samples, DDIM-100", "ddim50_1k": "model samples, DDIM-50",
             "ddim50_5k": "model samples, DDIM-50", "ddpm1000_256": "model samples, DDPM-1000 (the paper's sampler)",
             "ddpm1000_5k": "model samples, DDPM-1000 (the paper's sampler)",
             "broken_w2_ddim50_1k": "broken model (all weights 2-bit uniform), DDIM-50"}


def classifier_check(images: torch.Tensor) -> dict:
    """The card's digit check on samples [N, 1, 28, 28] in [-1, 1]: the share the MNIST classifier
    labels with confidence > 0.9, and the share of each class (10 fractions)."""
    labels, conf = classify(images)
    counts = np.bincount(labels, minlength=10) / len(labels)
    return {"frac_conf_gt_0.9": float((conf > 0.9).mean()), "class_fractions": counts.round(4).tolist(),
            "min_class_frac": float(counts.min()), "max_class_frac": float(counts.max())}


def broken_model(model):
    """Every weight at 2 bits (uniform), activations FP: a deliberately bad model."""
    q = QuantizedUNet(model.unet, dadq.TimestepGroups(model.num_timesteps, 1))
    for ql in q.layers.values():
        ql.w_bits = [2]
    return dadq.DiffusionModel(q.eval(), model.scheduler, source="2-bit broken")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--dataset", default="mnist", choices=["mnist", "fashion-mnist"])
    ap.add_argument("--quick", action="store_true", help="skip the 5k and DDPM-1000 runs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None,
                    help=f"comma-separated runs of {', '.join(RUNS)}: measure just these and merge them into the "
                         "existing quality.json (for the long runs, one session at a time)")
    ap.add_argument("--card-only", action="store_true",
                    help="measure nothing: re-render README.md's Quality section from the existing quality.json")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda: where the model samples; FID and the "
                    "classifier run on the CPU either way. Adds the DDPM-1000 run at 5k samples on cuda")
    ap.add_argument("--import-rows", default=None, metavar="DIR",
                    help="measure nothing: copy the --only rows from DIR/quality.json, written by this script on "
                         "another machine for the same weights (DIR/training.json's sha256 must match)")
    ap.add_argument("--data", default=None, metavar="DIR",
                    help="folder holding mnist/ and fashion-mnist/ (default: $DADQ_DATA, the shipped test splits, "
                         "../shared/data); the train split is read only for the train_10k_vs_test row")
    ap.add_argument("--download", action="store_true",
                    help="fetch a split found nowhere from its public mirror (sha256 checked)")
    args = ap.parse_args(argv)
    only = None if args.only is None else [r.strip() for r in args.only.split(",") if r.strip()]
    if only is not None and (not only or set(only) - set(RUNS)):
        raise SystemExit(f"--only {args.only!r}: choose from {', '.join(RUNS)}.")
    folder = dadq.models.DEFAULT_MODEL_DIR if args.model == "default" else Path(args.model)
    held_out = folder.parent / "fashion" if args.dataset == "mnist" else None
    if args.card_only:
        q = folder / "quality.json"
        if not q.exists():
            raise SystemExit(f"--card-only renders {q}, which does not exist; run without --card-only first.")
        write_text(folder / "README.md", card_with_quality(folder / "README.md", json.loads(q.read_text()), held_out))
        return 0
    if args.import_rows:
        if only is None:
            raise SystemExit("--import-rows needs --only: name the rows to copy.")
        import_rows(folder, Path(args.import_rows), only)
        write_text(folder / "README.md", card_with_quality(folder / "README.md",
                                                           json.loads((folder / "quality.json").read_text()), held_out))
        return 0
    model = dadq.load_model(args.model, device=args.device)
    device = device_name(model.device)
    # Bigger sampling batches only pay on a GPU; DDPM draws its step noise batch by batch, so the batch
    # size changes which noise each image gets (not its distribution).
    batch = 1000 if model.device.type == "cuda" else 256
    t_start = time.time()
    res: dict = {"metric": FID_LABEL, "dataset": args.dataset, "seed": args.seed}
    cmd = "python -m scripts.evaluate_default " + " ".join(sys.argv[1:] if argv is None else argv)
    if only is not None:
        old = folder / "quality.json"
        if not old.exists():
            raise SystemExit(f"--only merges into {old}, which does not exist; run without --only first.")
        res = json.loads(old.read_text())
        if res.get("dataset") != args.dataset or res.get("seed") != args.seed:
            raise SystemExit(f"--only: {old} is for dataset {res.get('dataset')} seed {res.get('seed')}; "
                             "pass the same --dataset and --seed.")
    wanted = (lambda name: name in only) if only is not None else (
        lambda name: not (args.quick and name in LONG_RUNS) and (name not in GPU_RUNS or device != "cpu"))
    test_imgs, _ = load_dataset(args.dataset, "test", data_root=args.data, download=args.download)
    # reference: the shipped MNIST-test stats, or the held-out dataset's own test set
    ref = "default" if args.dataset == "mnist" else torch.from_numpy(to_model_range(test_imgs))
    res["reference"] = f"{args.dataset} test set, 10k images"

    def timed_fid(name, make_images):
        if not wanted(name):
            return None
        t = time.time()
        images = make_images()
        res[name] = {"fid": round(fid(images, reference=ref), 3), "n": int(len(images)), "s": round(time.time() - t, 1)}
        if device != "cpu":
            res[name]["device"] = device
        if only is not None:
            res[name]["command"] = cmd
        print(name, res[name], flush=True)
        return images

    rng = np.random.default_rng(args.seed)
    if wanted("train_10k_vs_test"):  # the only row that reads the train split
        train_imgs, _ = load_dataset(args.dataset, "train", data_root=args.data, download=args.download)
    timed_fid("train_10k_vs_test",
              lambda: torch.from_numpy(to_model_range(train_imgs[rng.choice(60000, 10000, replace=False)])))
    timed_fid("gaussian_noise_1k",
              lambda: torch.randn(1000, 1, 28, 28, generator=torch.Generator().manual_seed(0)).clamp(-1, 1))
    def draw(m, n, steps, sampler="ddim"):
        return dadq.sample(m, n=n, steps=steps, seed=args.seed, sampler=sampler, batch_size=batch)

    s100 = timed_fid("ddim100_1k", lambda: draw(model, 1000, 100))
    if s100 is not None and args.dataset == "mnist":
        res["classifier_on_ddim100_1k"] = classifier_check(s100)
        print(res["classifier_on_ddim100_1k"], flush=True)
    timed_fid("ddim50_1k", lambda: draw(model, 1000, 50))
    timed_fid("broken_w2_ddim50_1k", lambda: draw(broken_model(model), 1000, 50))
    timed_fid("ddim50_5k", lambda: draw(model, 5000, 50))
    timed_fid("ddpm1000_256", lambda: draw(model, 256, 0, "ddpm"))
    timed_fid("ddpm1000_5k", lambda: draw(model, 5000, 0, "ddpm"))
    if only is None:
        res["wall_s"] = round(time.time() - t_start, 1)
        res["command"] = cmd
        res["device"] = device
    write_json(folder / "quality.json", res)
    write_text(folder / "README.md", card_with_quality(folder / "README.md", res, held_out))
    return 0


def import_rows(folder: Path, src: Path, names: list[str]) -> None:
    """Merge rows of src/quality.json into folder/quality.json, only if both describe the same weights."""
    ours = sha256_of(folder / "unet" / "diffusion_pytorch_model.safetensors")
    try:
        theirs = json.loads((src / "training.json").read_text())["unet_sha256"]
        other = json.loads((src / "quality.json").read_text())
    except (OSError, KeyError, json.JSONDecodeError) as e:
        raise SystemExit(f"--import-rows {src}: needs its training.json and quality.json ({e}).") from None
    if theirs != ours:
        raise SystemExit(f"--import-rows {src}: its weights (sha256 {theirs[:12]}…) are not {folder}'s "
                         f"({ours[:12]}…); rows of another model cannot be merged.")
    res = json.loads((folder / "quality.json").read_text())
    if (other.get("dataset"), other.get("seed")) != (res.get("dataset"), res.get("seed")):
        raise SystemExit(f"--import-rows {src}: its rows are for dataset {other.get('dataset')} seed "
                         f"{other.get('seed')}, not {res.get('dataset')} seed {res.get('seed')}.")
    missing = [n for n in names if n not in other]
    if missing:
        raise SystemExit(f"--import-rows {src}: no row {', '.join(missing)} there; it has "
                         f"{', '.join(k for k in RUNS if k in other)}.")
    for n in names:
        res[n] = {**other[n], "command": other["command"]}
    write_json(folder / "quality.json", res)


def fid_table(res: dict) -> list[str]:
    rows = [(k, v) for k, v in res.items() if isinstance(v, dict) and "fid" in v]
    where = on_gpu(res.get("device", "cpu"))
    lines = [f"Measured by `{res['command']}` ({res['wall_s'] / 60:.1f} min{where}). Scores are "
             f"**{res['metric']}**, against the {res['reference']}; seed {res['seed']}.\n",
             "| images | n | FID |", "|---|---|---|"]
    where_row = lambda v: f" (on {v['device']})" if "device" in v else ""  # noqa: E731
    lines += [f"| {RUN_NAMES.get(k, k)}{where_row(v)} | {v['n']:,} | {v['fid']:.2f} |" for k, v in rows]
    added = sorted({v["command"] for _, v in rows if "command" in v})
    if added:
        lines += ["", "Rows added later by: " + "; ".join(f"`{c}`" for c in added) + "."]
    return lines


def held_out_section(folder: Path) -> list[str]:
    """The held-out model's card summary: its sample grid and FID table, from its own quality.json."""
    q = folder / "quality.json"
    if not q.exists():
        return []
    res = json.loads(q.read_text())
    train = json.loads((folder / "training.json").read_text()) if (folder / "training.json").exists() else {}
    lines = ["", f"### Held-out model: {res['dataset']} (`{folder.name}/`)", "",
             "The same trainer and architecture on the other dataset, the model that shows nothing is tuned to "
             f"MNIST: `{train.get('command', '?')}` ({train.get('steps', '?')} steps, "
             f"{train.get('wall_time_s', 0) / 60:.1f} min, final loss {train.get('final_loss_last500', float('nan')):.4f}). "
             f"Its own card: `{folder.name}/README.md`. Its FID uses the same MNIST-classifier features against its "
             "own test set; a digit classifier is a weaker yardstick for clothing, so read the ordering of its "
             "rows, not their size next to MNIST's.", "",
             f"![{res['dataset']} samples](../{folder.name}/samples.png)", ""]
    return lines + fid_table(res)


def card_with_quality(card: Path, res: dict, held_out: Path | None = None) -> str:
    text = card.read_text() if card.exists() else ""
    text = text.split(MARK)[0].rstrip() + "\n\n"
    lines = [f"{MARK}\n"] + fid_table(res)
    c = res.get("classifier_on_ddim100_1k")
    if c:
        lines += ["", f"Classifier check on the 1k DDIM-100 samples: {c['frac_conf_gt_0.9'] * 100:.1f}% have confidence "
                  f"> 0.9; class shares range {c['min_class_frac'] * 100:.1f}%–{c['max_class_frac'] * 100:.1f}% "
                  f"({', '.join(f'{i}: {p * 100:.1f}%' for i, p in enumerate(c['class_fractions']))})."]
        conf_ok = c["frac_conf_gt_0.9"] >= 0.9
        share_ok = 0.05 <= c["min_class_frac"] and c["max_class_frac"] <= 0.15
        lines += ["", f"Targets: ≥ 90% with confidence > 0.9: **{'met' if conf_ok else 'NOT met'}**; every class "
                  f"5–15%: **{'met' if share_ok else 'NOT met'}**."]
    missing = [RUN_NAMES[k] + f" ({k.rsplit('_', 1)[-1]})" for k in LONG_RUNS if k not in res]
    if missing:
        lines += ["", "Not run in this measurement (`--quick`): " + "; ".join(missing) + "."]
    if held_out is not None:
        lines += held_out_section(held_out)
    return text + "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
