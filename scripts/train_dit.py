"""Train the second embedded model: a small class-conditional DiT (diffusers ``DiTTransformer2DModel``)
in pixel space on MNIST, with a null class for classifier-free guidance.

    python -m scripts.train_dit --minutes 80 --out assets/dit            # CPU, one thread
    python -m scripts.train_dit --minutes 30 --device cuda --batch 256    # a GPU: train longer / bigger batch
    python -m scripts.train_dit --resume --minutes 60                     # continue from the checkpoint

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
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch


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


def build_scheduler(prediction_type: str = "v_prediction"):
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                         clip_sample=True, prediction_type=prediction_type)


def target(prediction_type: str, x0: torch.Tensor, noise: torch.Tensor, acp_t: torch.Tensor) -> torch.Tensor:
    """The regression target of x_t = sqrt(a) x0 + sqrt(1-a) noise, a = acp_t [N, 1, 1, 1]:
    the noise ("epsilon") or v = sqrt(a) noise - sqrt(1-a) x0 ("v_prediction")."""
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return acp_t.sqrt() * noise - (1 - acp_t).sqrt() * x0
    raise ValueError(f"prediction type {prediction_type!r}: use 'epsilon' or 'v_prediction'.")


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


# --- evaluation, model card and profile of the trained DiT -----------------------------------------

def _accuracy(model, n: int, steps: int, seed: int, scale: float, threads: int):
    """Samples with labels 0..9 cycled, the classifier's labels, accuracy on the requested class."""
    import dadq
    from dadq.metrics import classify

    labels = np.arange(n) % 10
    x = dadq.sample(model, n=n, steps=steps, seed=seed, class_labels=labels, guidance_scale=scale, progress=False)
    pred, conf = classify(x)
    return x, labels, pred, conf


DENOISE_T = (50, 150, 300, 500, 700)


def denoise_errors(models: dict, n: int = 256, ts=DENOISE_T, seed: int = 0) -> dict:
    """How well each model denoises real digits: the first n MNIST test digits x0, noised to x_t at each t
    with one seeded noise, run through dadq's ``model.eps`` (the sampler's path: eval mode, labels = the
    digits' classes for class-conditional models); {name: {t: {"eps_mse", "x0_mse"}}}, x0 estimated as
    (x_t - sqrt(1-a) eps) / sqrt(a). The x0 error is what a sample keeps: an eps error is multiplied by
    sqrt((1-a)/a) in it, which grows with t."""
    from dadq.data import load_dataset, to_model_range

    images, labels = load_dataset("mnist", "test")
    x0 = torch.from_numpy(to_model_range(images[:n]))
    y = torch.from_numpy(labels[:n].astype(np.int64))
    out = {}
    for name, model in models.items():
        g = torch.Generator().manual_seed(seed)
        rows = {}
        for tv in ts:
            t = torch.full((n,), int(tv))
            noise = torch.randn(x0.shape, generator=g)
            a = model.scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
            xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
            eps = model.eps(xt, t, class_labels=y) if model.conditioning == "class" else model.eps(xt, t)
            x0_hat = (xt - (1 - a).sqrt() * eps) / a.sqrt()
            rows[str(tv)] = {"eps_mse": round(float((eps - noise).pow(2).mean()), 5),
                             "x0_mse": round(float((x0_hat - x0).pow(2).mean()), 5)}
        out[name] = rows
    return out


def evaluate(out: Path, guidance: float | None, scales: list[float], sweep_n: int, n: int, steps: int,
             sweep_steps: int, threads: int, baseline: str | None = None, baseline_name: str = "baseline DiT",
             sweep_only: bool = False) -> dict:
    """Guidance sweep (sweep_n samples, seed 1) unless ``guidance`` is given, then accuracy and FID on n
    samples (seed 0) at the chosen scale, and the denoising errors on test digits (``denoise_errors``; beside
    the default UNet's and, if given, a ``baseline`` DiT folder's); writes quality.json, dadq.json, samples.png."""
    import dadq
    from dadq.images import save_grid
    from dadq.io import write_json
    from dadq.metrics import FID_LABEL

    torch.set_num_threads(threads)
    model = dadq.load_model(str(out))
    nets = {"this DiT": model, "default UNet": dadq.load_model("default")}
    if baseline:
        nets[baseline_name] = dadq.load_model(baseline)
    q = {"sweep": [], "prediction_type": model.prediction_type}
    t0 = time.time()
    if not sweep_only:
        q["denoise"] = denoise_errors(nets)
        print(json.dumps(q["denoise"]), flush=True)
    steps_now = json.loads((out / "training.json").read_text())["steps"] if (out / "training.json").exists() else None
    earlier = out / "quality_sweep.json"
    if guidance is not None and earlier.exists():  # a sweep that ran on an earlier checkpoint (--sweep-only)
        prev = json.loads(earlier.read_text())
        q["sweep"] = prev["sweep"]
        q["sweep_checkpoint_step"] = prev["checkpoint_step"]
        if prev["checkpoint_step"] != steps_now:
            q["sweep_note"] = (f"The sweep ran on the step-{prev['checkpoint_step']:,} checkpoint (training still running, "
                               f"to leave time for the final evaluation); the final {steps_now:,}-step weights were then "
                               "evaluated at the chosen scale only.")
    if guidance is None:
        for sc in scales:
            _, labels, pred, conf = _accuracy(model, sweep_n, sweep_steps, 1, sc, threads)
            row = dict(guidance_scale=sc, n=sweep_n, sampler=f"DDIM-{sweep_steps}", seed=1,
                       accuracy=round(float((pred == labels).mean()), 4), mean_confidence=round(float(conf.mean()), 4))
            q["sweep"].append(row)
            print(row, flush=True)
        best = max(q["sweep"], key=lambda r: (r["accuracy"], -r["guidance_scale"]))
        # the smallest scale within 1 point of the best accuracy: guidance beyond it costs diversity (FID)
        guidance = min(r["guidance_scale"] for r in q["sweep"] if r["accuracy"] >= best["accuracy"] - 0.01)
        if sweep_only:
            write_json(earlier, dict(sweep=q["sweep"], checkpoint_step=steps_now, guidance_scale=guidance,
                                     seconds=round(time.time() - t0, 1)))
            info = json.loads((out / "dadq.json").read_text()) if (out / "dadq.json").exists() else {}
            info.update(null_class=10, guidance_scale=guidance)
            write_json(out / "dadq.json", info)
            print(f"sweep -> {earlier}; default guidance {guidance}")
            return q
    x, labels, pred, conf = _accuracy(model, n, steps, 0, guidance, threads)
    acc = float((pred == labels).mean())
    fid = float(dadq.fid(x))
    per_class = {int(c): round(float((pred[labels == c] == c).mean()), 4) for c in range(10)}
    m = max(1, min(10, n // 10))  # one row per class, m samples of it (sample i has class i % 10)
    order = torch.tensor([c + 10 * j for c in range(10) for j in range(m) if c + 10 * j < n])
    save_grid(x[order], out / "samples.png", nrow=m)
    q.update(guidance_scale=guidance, n=n, sampler=f"DDIM-{steps}", eta=0.0, seed=0,
             labels="0..9 cycled (n/10 per class)", class_accuracy=round(acc, 4), per_class_accuracy=per_class,
             mean_confidence=round(float(conf.mean()), 4), accuracy_bar=0.9, meets_bar=acc >= 0.9,
             fid=round(fid, 3), fid_metric=FID_LABEL, fid_reference="assets/default MNIST test-set statistics",
             classifier="dadq.metrics.classify (the project's MNIST feature network)",
             seconds=round(time.time() - t0, 1), threads=threads)
    old = json.loads((out / "quality.json").read_text()) if (out / "quality.json").exists() else {}
    if old.get("class_accuracy") is not None and old.get("sampler") != q["sampler"]:
        # the same weights evaluated with another sampler: kept beside, so the card shows both
        keep = ("sampler", "guidance_scale", "n", "class_accuracy", "per_class_accuracy", "mean_confidence", "fid")
        q["other_samplers"] = [{k: old.get(k) for k in keep}] + [
            r for r in old.get("other_samplers", []) if r.get("sampler") != q["sampler"]]
    write_json(out / "quality.json", q)
    info = json.loads((out / "dadq.json").read_text()) if (out / "dadq.json").exists() else {}
    info.update(null_class=10, guidance_scale=guidance)
    if acc >= 0.9:  # the sampler steps the bar is met at: the app's default for this model
        info["sampler_steps"] = steps
    write_json(out / "dadq.json", info)
    print(json.dumps({k: v for k, v in q.items() if k != "sweep"}, indent=1))
    return q


def build_profile(out: Path, threads: int, calib: int = 4, mode: str = "fast", layers=None) -> None:
    import dadq

    torch.set_num_threads(threads)
    model = dadq.load_model(str(out))
    prof = dadq.profile(model, groups=10, bits=range(2, 9), calib_per_group=calib, mode=mode, layers=layers)
    prof.save(out / "profile.safetensors")
    print(f"profile: {len(prof.layer_names)} layers, {prof.meta['seconds']} s -> {out / 'profile.safetensors'}")


def write_card(out: Path) -> None:
    """<out>/README.md from training.json, quality.json (and training_init.json: the run the weights were
    initialised from, copied from --init-from's folder the first time the card is written)."""
    import hashlib

    from dadq.io import write_text

    tr = json.loads((out / "training.json").read_text())
    q = json.loads((out / "quality.json").read_text()) if (out / "quality.json").exists() else {}
    a = tr["args"]
    init_file = out / "training_init.json"
    src = Path(a["init_from"]) / "training.json" if a.get("init_from") else None
    if src is not None and src.exists() and not init_file.exists():
        write_json(init_file, json.loads(src.read_text()))
    # the file exists only for a run initialised from another (a later --resume of it no longer names --init-from)
    init = json.loads(init_file.read_text()) if init_file.exists() else None
    qinit_file = out / "quality_init.json"
    qsrc = Path(a["init_from"]) / "quality.json" if a.get("init_from") else None
    if qsrc is not None and qsrc.exists() and not qinit_file.exists():
        write_json(qinit_file, json.loads(qsrc.read_text()))
    qinit = json.loads(qinit_file.read_text()) if qinit_file.exists() and init else {}
    # a resumed phase: its first run's arguments and length from train.log ('start step 0: ARGS', '# done: N steps in Ss')
    log_text = (out / "train.log").read_text() if (out / "train.log").exists() else ""
    first_run = None
    if a.get("resume"):
        starts = [m.start() for m in re.finditer(r"start step 0: ", log_text)]
        done = re.search(r"# done: (\d+) steps in (\d+)s", log_text[starts[-1]:]) if starts else None
        if done:
            argv = log_text[starts[-1]:].split(": ", 1)[1].split(";", 1)[0].split("\n", 1)[0]
            first_run = dict(steps=int(done[1]), seconds=float(done[2]),
                             lr=float(re.search(r"--lr (\S+)", argv)[1]) if "--lr " in argv else 5e-4,
                             minutes=float(re.search(r"--minutes (\S+)", argv)[1]) if "--minutes " in argv else 60.0)
    acp500 = float(build_scheduler().alphas_cumprod[500])
    gain500 = math.sqrt((1 - acp500) / acp500)
    wfile = out / "transformer" / "diffusion_pytorch_model.safetensors"
    sha = hashlib.sha256(wfile.read_bytes()).hexdigest()
    cfg = tr["config"]
    hidden = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    pred = a.get("prediction", "epsilon")
    pred_text = {"epsilon": "epsilon (noise) prediction", "v_prediction": "v-prediction (v = sqrt(a) eps - sqrt(1-a) x0)"}[pred]

    def command(args: dict, init_from: str | None = None) -> str:
        return (f"python -m scripts.train_dit --minutes {args['minutes']:g} --batch {args['batch']} --lr {args['lr']:g} "
                f"--seed {args['seed']} --hidden {args['hidden']} --heads {args['heads']} --depth {args['depth']} "
                f"--patch {args['patch']} --prediction {args.get('prediction', 'epsilon')}"
                + (f" --init-from {init_from}" if init_from else "") + " --out assets/dit")

    hist = tr.get("history", [])
    loss_tail = np.mean([h["loss"] for h in hist[-5:]]) if hist else float("nan")
    lines = []
    if init:
        ia = init["args"]
        ih = init.get("history", [])
        init_loss = np.mean([h["loss"] for h in ih[-5:]]) if ih else float("nan")
        lines.append(
            f"- Phase 1 (epsilon prediction; `training_init.json`): {init['steps']:,} steps in {init['seconds'] / 60:.1f} min "
            f"(`{command(ia)}`, resumed once: its first 4,489 steps left the label dropout to diffusers' per-block "
            f"`LabelEmbedding`, which never drops all blocks at once, so the null class was untrained until the resume). "
            f"Mean loss of its last 500 steps {init_loss:.4f} (epsilon MSE). These weights shipped at commit fdd9227 and "
            f"missed the bar (class accuracy {qinit.get('class_accuracy')}, FID {qinit.get('fid')} at s = "
            f"{qinit.get('guidance_scale')}, {qinit.get('n')} samples; `quality_init.json`): see Diagnosis.")
        a2 = dict(a, lr=first_run["lr"], minutes=first_run["minutes"]) if first_run else a
        more = "" if not first_run else (
            f" {first_run['steps']:,} steps in {first_run['seconds'] / 60:.1f} min; then continued at learning rate "
            f"{a['lr']:g} from its checkpoint (`python -m scripts.train_dit --resume --minutes {a['minutes']:g} --lr "
            f"{a['lr']:g}`; `--minutes` counts the whole phase) to")
        lines.append(
            f"- Phase 2 ({pred_text}), initialised from phase 1's EMA weights: `{command(a2, '<phase-1 assets/dit>')}` "
            f"(`git worktree add /tmp/dit-eps fdd9227` gives the phase-1 folder, `/tmp/dit-eps/assets/dit`).{more} "
            f"{tr['steps']:,} steps in {tr['seconds'] / 60:.1f} min{' in all' if first_run else ''}; mean loss of the last "
            f"500 steps {loss_tail:.4f} (v MSE: not comparable with phase 1's epsilon MSE; v weights the high-noise steps more).")
    else:
        lines.append(f"- command: `{command(a)}`; {tr['steps']:,} steps in {tr['seconds'] / 60:.1f} min; mean loss of "
                     f"the last 500 steps {loss_tail:.4f}.")
    lines.append(f"- one CPU thread ({tr['device']}) on a 2-core machine shared with other jobs "
                 f"({tr['seconds'] / max(tr['steps'], 1):.2f} s per step on average in the last phase); `--resume` "
                 "continues from the git-ignored checkpoint. Log: `train.log`; loss curve: `training.json`."
                 + ("" if tr.get("final") else " The run was stopped after this checkpoint (the last periodic save) "
                    "to leave time for the evaluation; `training.json` and the weights are that checkpoint."))
    training = "\n".join(lines)
    lr_text = f"{first_run['lr']:g}, then {a['lr']:g}" if first_run else f"{a['lr']:g}"

    den = q.get("denoise", {})
    den_rows = ""
    if den:
        ts = list(next(iter(den.values())).keys())
        den_rows = ("| model | " + " | ".join(f"t={t}" for t in ts) + " |\n|---|" + "---|" * len(ts) + "\n"
                    + "".join(f"| {name} | " + " | ".join(f"{v[t]['x0_mse']:.4f} ({v[t]['eps_mse']:.4f})" for t in ts)
                              + " |\n" for name, v in den.items()))
    sweep = "".join(f"| {r['guidance_scale']:g} | {r['accuracy']:.3f} | {r['mean_confidence']:.3f} |\n"
                    for r in q.get("sweep", []))
    sweep_n = q["sweep"][0]["n"] if q.get("sweep") else 0
    sweep_sampler = q["sweep"][0]["sampler"] if q.get("sweep") else ""
    per_class = " | ".join(f"{v:.2f}" for v in q.get("per_class_accuracy", {}).values())
    # the card says which sampler meets the bar; where another one misses it, it says so beside
    missed = [r for r in q.get("other_samplers", []) if (r.get("class_accuracy") or 0) < 0.9]
    selected = "" if not missed or not q.get("meets_bar") else (
        f"\nWith {', '.join(r['sampler'] for r in missed)} this model misses the bar, so the bar is met for "
        f"{q.get('sampler')} only (chosen after an earlier checkpoint missed it at DDIM-50). Sample this model with "
        f"{q.get('sampler')}. The misses are mostly 1s that grow extra strokes (per class below): more, smaller steps at low "
        f"noise, each guided, add ink to thin strokes; stronger guidance makes it worse (the sweep above).\n")
    other = selected + "".join(
        f"- with {r['sampler']} instead (same weights, s = {r['guidance_scale']}, {r['n']} samples): class accuracy "
        f"{r['class_accuracy']}, per class " + " | ".join(f"{v:.2f}" for v in r["per_class_accuracy"].values())
        + f", {q.get('fid_metric', 'FID')} {r['fid']}\n" for r in q.get("other_samplers", []))
    status = ("" if q.get("meets_bar", True) else
              f"\n**Status: this model does not meet the quality bar** (class accuracy {q.get('class_accuracy')} < 0.9).\n")
    prof_line = ("`profile.safetensors`: `dadq.profile(dit, groups=10, bits=range(2, 9), calib_per_group=4, "
                 "mode=\"fast\")` under guidance at the default scale (`python -m scripts.train_dit --profile`)."
                 if (out / "profile.safetensors").exists() else
                 "No profile ships yet: build one with `python -m scripts.train_dit --profile` "
                 "(G=10, bits 2-8, 4 calibration samples per group, fast mode).")
    text = f"""# dadq's second embedded model: a class-conditional DiT on MNIST

A small diffusion transformer (diffusers `DiTTransformer2DModel`, pixel space, 1x28x28) trained on the
MNIST training split (60k digits, `../shared/data/mnist`) with a null class for classifier-free
guidance. `dadq.load_model("dit")` loads it (this folder: `transformer/`, `scheduler/`, `dadq.json`).

```python
import dadq
dit = dadq.load_model("dit")                                  # classes 0-9, null class 10
x = dadq.sample(dit, n=20, steps={str(q.get('sampler', 'DDIM-50')).split('-')[-1]}, class_labels=[3] * 10 + [7] * 10, guidance_scale={q.get('guidance_scale', 'None')})
```

## Model
| | |
|---|---|
| class | `DiTTransformer2DModel` (diffusers {__import__('diffusers').__version__}) |
| patch size | {cfg['patch_size']} ({(28 // cfg['patch_size']) ** 2} tokens) |
| hidden / heads / depth | {hidden} / {cfg['num_attention_heads']} / {cfg['num_layers']} (adaLN-Zero blocks, GELU-tanh MLP x4) |
| classes | 0-9 (`num_embeds_ada_norm=10`); null class 10 = diffusers' CFG row of `LabelEmbedding` |
| parameters | {tr['params']:,} |
| weights | {wfile.stat().st_size / 1e6:.2f} MB float32 safetensors, sha256 `{sha}` |
| scheduler | DDPM, T=1000, linear betas 1e-4..0.02, **{pred_text}** (`prediction_type` in `scheduler/`; `dadq` converts the output to eps: `DiffusionModel.output_to_eps`) |

## Training
- seed {tr['seed']}; AdamW lr {lr_text} ({a['warmup']} warm-up steps), no weight decay, grad-norm clip 1.0,
  batch {tr['batch']}, EMA {tr['ema_decay']} (warm-up (1+step)/(10+step)); the shipped weights are the EMA.
- labels dropped to the null class with probability {tr['class_dropout']}, once per sample for every block (diffusers'
  own per-block dropout is switched off; see `scripts/train_dit.py`).
{training}

## Diagnosis: why phase 1 failed, and what changed
The sampling path was checked against training first: the shipped weights equal the checkpoint's EMA, the model
is in eval mode (no label dropout), and `dadq`'s `model.eps` equals the training forward on the same inputs.
There was no train/sample mismatch. The failure was the epsilon target on a patch-4 transformer: its
eps error at mid/high noise is small in MSE but is white noise it fails to cancel, and the x0 estimate multiplies
it by sqrt((1-a)/a) ({gain500:.1f}x at t=500), so samples kept high-frequency noise. A v-predicting model's x0 error never
exceeds its output error (x0 = sqrt(a) x_t - sqrt(1-a) v). Denoising error on 256 MNIST test digits, x0 MSE
(eps MSE in brackets), through `model.eps` (`python -m scripts.train_dit --evaluate`, `denoise_errors`):

{den_rows}
## Quality
Class accuracy: the project's MNIST classifier (`dadq.metrics.classify`) labels each sample; a sample counts
when it gets the *requested* class. Bar: >= 90% of 1k samples at the default guidance.

| guidance s | accuracy ({sweep_n} samples, {sweep_sampler}, seed 1) | mean confidence |
|---|---|---|
{sweep}
{q.get('sweep_note', '')}
Default guidance: **s = {q.get('guidance_scale')}** (the smallest scale within 1 point of the best accuracy in the sweep;
larger scales cost diversity). At it, {q.get('n')} samples ({q.get('sampler')}, eta 0, seed 0, labels 0-9 cycled):

- class accuracy **{q.get('class_accuracy')}** (bar 0.9: {'met' if q.get('meets_bar') else 'NOT met'}); mean confidence {q.get('mean_confidence')}
- per class (0-9): {per_class}
- {q.get('fid_metric', 'FID')} **{q.get('fid')}** (reference: the MNIST test-set statistics in `assets/default`, as on the default model's card)

{other}
`samples.png`: one row per class, at the default guidance. `quality.json` holds these numbers.
{status}
## Profile
{prof_line}
Calibration draws 4 classes per run (stratified uniform), runs guided DDIM trajectories, and evaluates every
calibration input as the sampler does: conditional and null-class branches in one batch; D is measured on
the guided eps (see `dadq/calibrate.py`).
"""
    write_text(out / "README.md", text)
    print(f"card -> {out / 'README.md'}")


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
    p.add_argument("--prediction", choices=("v_prediction", "epsilon"), default="v_prediction",
                   help="what the DiT predicts (v: its x0 error never exceeds its output error, see module doc)")
    p.add_argument("--init-from", default=None,
                   help="a diffusers DiT folder (e.g. an earlier assets/dit) whose weights start a fresh run")
    p.add_argument("--class-dropout", type=float, default=0.1,
                   help="probability that a label is replaced by the null class (in every block at once)")
    p.add_argument("--out", default="assets/dit")
    p.add_argument("--checkpoint", default=None, help="resumable checkpoint (default assets/.ckpt-dit.pt)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--save-minutes", type=float, default=5.0)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--bench", type=int, default=0, help="time this many steps, print s/step and exit")
    p.add_argument("--evaluate", action="store_true",
                   help="no training: guidance sweep, class accuracy and FID of <out>; writes quality.json, dadq.json, card")
    p.add_argument("--guidance", type=float, default=None,
                   help="--evaluate at this scale (no sweep; an earlier --sweep-only's quality_sweep.json is shown)")
    p.add_argument("--sweep-only", action="store_true",
                   help="--evaluate: only the guidance sweep (on the current checkpoint, while training runs): writes "
                        "quality_sweep.json and the chosen scale into dadq.json")
    p.add_argument("--baseline", default=None, help="--evaluate: another DiT folder whose denoising errors to show beside")
    p.add_argument("--baseline-name", default="baseline DiT", help="its row name in quality.json and the card")
    p.add_argument("--scales", default="1,2,3,4,5", help="guidance scales of the sweep")
    p.add_argument("--sweep-n", type=int, default=200)
    p.add_argument("--sweep-steps", type=int, default=25)
    p.add_argument("--eval-n", type=int, default=1000)
    p.add_argument("--eval-steps", type=int, default=50)
    p.add_argument("--card", action="store_true", help="no training: (re)write <out>/README.md from training.json and quality.json")
    p.add_argument("--profile", action="store_true", help="no training: build <out>/profile.safetensors (G=10, bits 2-8, fast)")
    p.add_argument("--profile-layers", action="append", default=None, help="glob of layers (for timing a subset)")
    args = p.parse_args(argv)
    if args.evaluate or args.card or args.profile:
        out = Path(args.out)
        if args.sweep_only:
            evaluate(out, None, [float(v) for v in args.scales.split(",")], args.sweep_n, args.eval_n, args.eval_steps,
                     args.sweep_steps, args.threads, sweep_only=True)
            return 0
        if args.evaluate:
            evaluate(out, args.guidance, [float(v) for v in args.scales.split(",")], args.sweep_n, args.eval_n,
                     args.eval_steps, args.sweep_steps, args.threads, args.baseline, args.baseline_name, args.sweep_only)
        if args.profile:
            build_profile(out, args.threads, layers=args.profile_layers)
        write_card(out)
        return 0

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
    # diffusers gives every block (and the final layer's reuse of block 0) its own LabelEmbedding, each built
    # with class_dropout_prob=0.1 and each dropping labels independently in train() mode: the whole-model
    # null class (every block at once) would then almost never be trained. So the table keeps its null row,
    # diffusers' own dropout is switched off, and the label is dropped here, once per sample, for all blocks.
    for m in model.modules():
        if type(m).__name__ == "LabelEmbedding":
            m.dropout_prob = 0.0
    null_class = config["num_embeds_ada_norm"]
    ema = build_dit(config).to(dev)
    ema.load_state_dict(model.state_dict())
    ema.eval().requires_grad_(False)
    if args.init_from and not args.resume:
        from diffusers import DiTTransformer2DModel

        src = Path(args.init_from)
        init = DiTTransformer2DModel.from_pretrained(src / "transformer" if (src / "transformer").is_dir() else src)
        model.load_state_dict(init.state_dict())
        ema.load_state_dict(init.state_dict())
    scheduler = build_scheduler(args.prediction)
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
        drop = torch.rand(args.batch, device=dev) < args.class_dropout
        y = torch.where(drop, torch.full_like(y, null_class), y)
        pred = model(xt, timestep=t, class_labels=y).sample
        loss = torch.nn.functional.mse_loss(pred, target(args.prediction, x0, noise, a))
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
