"""Shared helpers of the benchmark scripts: machine facts, interleaved timing, tables, results, figures.

Nothing here does dadq maths; it only times, prints and writes.
"""
from __future__ import annotations

import copy
import datetime as _dt
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from dadq.models import DEFAULT_MODEL_DIR

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
EXPERIMENT_RESULTS = REPO / "experiments" / "results"  # evidence sweeps, apart from the speed benchmarks
DEFAULT_PROFILE = DEFAULT_MODEL_DIR / "profile.safetensors"


# --- setup and machine facts --------------------------------------------------------------------

def setup_threads(threads: int | None) -> int:
    """Set torch's intra-op threads (None: leave torch's default); returns the count in use."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


def add_common_args(parser, quick_help: str = "a small, fast version") -> None:
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's own default, i.e. all cores)")
    parser.add_argument("--out", default=None, help="result JSON path (default: benchmarks/results/<name>.json)")


def sampling_experiment(doc: str, argv, n: int, seed: int, quick_n: int, quick_steps: int = 25,
                        profile: str | None = None):
    """The shared command line of an experiment that samples the default model with a profile: --n samples per
    row, --steps DDIM steps, --seed, --profile (default ``profile``, else the shipped one) and the common options;
    --quick samples quick_n at quick_steps. Returns (args, model, profile), with the threads set."""
    import argparse

    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, f"{quick_n} samples, {quick_steps} steps")
    p.add_argument("--n", type=int, default=n, help="samples per row")
    p.add_argument("--steps", type=int, default=50, help="DDIM steps")
    p.add_argument("--seed", type=int, default=seed)
    p.add_argument("--profile", default=profile, help=f"profile file (default: {profile or 'the shipped one'})")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.steps = quick_n, quick_steps
    setup_threads(args.threads)
    model = load_model("default")
    return args, model, get_profile(model, "default", args.profile)


def command_line(module: str, package: str = "benchmarks") -> str:
    """The command that re-runs this script with the same arguments ('python -m package.module ...')."""
    return f"python -m {package}.{module}" + ("" if len(sys.argv) <= 1 else " " + " ".join(sys.argv[1:]))


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_facts() -> dict:
    import torch

    facts = {
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "cuda_available": bool(torch.cuda.is_available()),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        import scipy

        facts["scipy"] = scipy.__version__
    except ImportError:
        pass
    try:
        facts["loadavg_1_5_15"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return facts


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


# --- timing ---------------------------------------------------------------------------------------

def timed(fn: Callable, *args, **kwargs):
    """(result, seconds) of one call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def interleaved(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 0, rotate: bool = True,
                on_rep: Callable[[int, dict], None] | None = None) -> dict[str, list[float]]:
    """Run every variant ``repeats`` times, interleaved (A B C, B C A, ... when rotate), after
    ``warmup`` untimed rounds. Returns name -> list of seconds (in repetition order)."""
    names = list(fns)
    for _ in range(warmup):
        for n in names:
            fns[n]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)] if rotate else names
        rep = {}
        for n in order:
            t0 = time.perf_counter()
            fns[n]()
            rep[n] = time.perf_counter() - t0
            times[n].append(rep[n])
        if on_rep is not None:
            on_rep(r, rep)
    return times


def median(xs) -> float:
    xs = [float(x) for x in xs]
    return float(statistics.median(xs)) if xs else float("nan")


def paired_ratios(num: list[float], den: list[float]) -> list[float]:
    """Per-repetition ratios num[i] / den[i] (the variants ran next to each other)."""
    return [a / b for a, b in zip(num, den)]


def ratio_summary(num: list[float], den: list[float]) -> dict:
    r = paired_ratios(num, den)
    return {"median": median(r), "min": float(min(r)), "max": float(max(r)),
            "ratio_of_medians": median(num) / median(den), "per_repeat": [round(x, 4) for x in r]}


# --- output ---------------------------------------------------------------------------------------

def fmt(x, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        x = float(x)
        if not math.isfinite(x):
            return str(x)
        if x == 0:
            return "0"
        if abs(x) >= 1e5 or abs(x) < 1e-3:
            return f"{x:.{max(digits - 1, 1)}e}"
        return f"{x:.{digits}g}"
    return str(x)


def print_table(headers: list[str], rows: list[list], title: str | None = None) -> str:
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h)) for i, h in enumerate(headers)]
    lines = []
    if title:
        lines.append(title)
    lines.append("  ".join(str(h).ljust(w) for h, w in zip(headers, widths)))
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append("  ".join(c.rjust(w) for c, w in zip(r, widths)))
    text = "\n".join(lines)
    print(text, flush=True)
    return text


def jsonable(obj):
    """numpy scalars/arrays, tuples, Paths, non-finite floats -> plain JSON values."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating, float)):
        x = float(obj)
        return x if math.isfinite(x) else str(x)
    if isinstance(obj, Path):
        return shown_path(obj) if obj.is_absolute() else str(obj)
    return obj


def result_path(name: str, out: str | None = None, results: Path = RESULTS) -> Path:
    return Path(out) if out else results / f"{name}.json"


def write_result(name: str, obj: dict, out: str | None = None, results: Path = RESULTS) -> Path:
    """Write the result JSON atomically (dadq.io.write_json); returns its path."""
    from dadq.io import write_json

    path = result_path(name, out, results)
    write_json(path, jsonable(obj))
    print(f"wrote {path}", flush=True)
    return path


def save_figure(fig, stem: Path, width: int = 900, height: int | None = None) -> dict:
    """Write a plotly figure as PNG (rendered by the local chromium) and always as HTML.

    Returns {"png": path or None, "html": path, "png_error": str or None}. The HTML is standalone
    except for plotly.js, which it loads from the CDN (include_plotlyjs="cdn") to stay small.
    """
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    from dadq.io import atomic_path

    out = {"png": None, "html": None, "png_error": None}
    html = stem.with_suffix(".html")
    with atomic_path(html) as tmp:
        fig.write_html(str(tmp), include_plotlyjs="cdn", full_html=True)
    out["html"] = html
    png = stem.with_suffix(".png")
    try:
        h = int(height or (fig.layout.height if fig.layout.height else 500))
        data = render_png(fig, width, h)
        with atomic_path(png) as tmp:
            tmp.write_bytes(data)
        out["png"] = png
    except Exception as e:  # no chromium / playwright here
        out["png_error"] = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    return out


def render_png(fig, width: int, height: int) -> bytes:
    """PNG bytes of a plotly figure, drawn by the local chromium: ``dadq.plots.render_png`` (its one
    home; imported here lazily, as plotting is not needed to import this module)."""
    from dadq.plots import render_png as render

    return render(fig, width, height)


# --- models and profiles ---------------------------------------------------------------------------

def load_model(which: str = "default", device: str | None = None):
    """'default' (the shipped MNIST DDPM) or 'random' (the same architecture, random seeded weights), on
    ``device`` (default: the CPU)."""
    import dadq

    if which == "random":
        return dadq.load_model(dict(dadq.models.DEFAULT_UNET_CONFIG), device=device)
    return dadq.load_model(which, device=device)


def wait_for(path: Path, timeout_s: float, poll_s: float = 20.0) -> bool:
    """Poll until ``path`` exists (a finished atomic write); False on timeout."""
    t0 = time.time()
    while not Path(path).exists():
        if time.time() - t0 > timeout_s:
            return False
        print(f"waiting for {path} ({time.time() - t0:.0f} s)...", flush=True)
        time.sleep(poll_s)
    return True


def profile_path(model_name: str = "default", path: str | Path | None = None) -> Path:
    """Where the profile to benchmark with lives: ``path``; else the one that ships with the model
    (dadq.models.default_profile_path, e.g. assets/fashion); else the shipped default model's."""
    from dadq.models import default_profile_path

    return Path(path) if path is not None else (default_profile_path(model_name) or DEFAULT_PROFILE)


def shown_path(path: str | Path) -> str:
    """``path`` as results show it: relative to the repository where it lies inside it."""
    p = Path(path).resolve()
    return str(p.relative_to(REPO)) if p.is_relative_to(REPO) else str(p)


_RANDOM_PROFILES: dict = {}  # model fingerprint -> Profile


def get_profile(model, model_name: str = "default", path: str | Path | None = None, wait_s: float = 0.0):
    """The profile at :func:`profile_path`, or for 'random' (development only) a tiny one built on
    the fly (G=2, 1 calibration sample, fast mode)."""
    import dadq

    if model_name == "random" and path is None:
        fp = model.fingerprint()
        if fp not in _RANDOM_PROFILES:  # seeded weights and calibration: one build serves every call of a process
            print("building a tiny development profile of the random-weight model (G=2, calib 1, fast)...", flush=True)
            _RANDOM_PROFILES[fp] = dadq.profile(model, groups=2, bits=range(2, 9), calib_per_group=1, mode="fast")
        return copy.deepcopy(_RANDOM_PROFILES[fp])
    path = profile_path(model_name, path)
    if wait_s and not wait_for(path, wait_s):
        raise SystemExit(f"no profile at {path} after waiting {wait_s:.0f} s")
    return dadq.Profile.load(path)
