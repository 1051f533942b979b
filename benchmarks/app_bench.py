"""Benchmark the Gradio app on a running server (a subprocess): through gradio_client, and in chromium.

    python -m benchmarks.app_bench [--model default] [--profile FILE] [--no-generate] [--out benchmarks/results/app.json]

Measures, in one run on one machine (absolute times on the 2-core box vary ~3x between runs, so the
ratios are the numbers to compare):
  start_to_ready   `python app.py` launched -> the server answers its config (page usable), and ->
                   a gradio_client connected; median over --starts launches (the last one serves the
                   rest of the benchmark), since one start on this machine varies between runs
  allocate         the slider-release round trip: /allocate through gradio_client (budget changes
                   every call), median and p90 of --reps calls
  browser          slider release -> heatmap redrawn, in chromium (Playwright): set the budget slider
                   and release it, wait until the heatmap plot's data in the DOM changes and the next
                   frame is painted; median and p90 of --browser-reps releases; target <= 300 ms. The
                   API calls above run in the same session, beside it. Baseline in the same run: a
                   second server drawing through gr.Plot values (DADQ_APP_PLOT_REDRAW=1, the previous
                   path); the two take turns, and the ratio of medians is reported
  generate         /generate n + n at DDIM-steps (FP and quantized from identical noise, PNGs,
                   PSNR/SSIM), against one FP-only dadq.sample of the same size in this process;
                   target <= 2.3x (the quantized half <= 1.3x FP). The server's own FP/quantized
                   split (from its timing line) is reported too, and dadq.sample_pair in this
                   process with the chains one after the other and side by side (parallel=True).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, proc, log: str, timeout: float = 120.0) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode}:\n{Path(log).read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "config", timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter()
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"the app did not answer within {timeout} s")


class _Skip(Exception):
    """Ends the measuring block early (e.g. --no-generate)."""


RELEASE_TO_REDRAW = """([v, before]) => new Promise(res => {
    const slider = document.querySelector('#budget-slider input[type=range]');
    const heat = () => JSON.stringify(document.querySelector('#heatmap .js-plotly-plot').data.map(t => t.z));
    const t0 = performance.now();
    const obs = new MutationObserver(() => {
        if (heat() !== before) { obs.disconnect(); requestAnimationFrame(() => res(performance.now() - t0)); }
    });
    obs.observe(document.querySelector('#heatmap'), {subtree: true, childList: true, attributes: true});
    slider.value = String(v);
    slider.dispatchEvent(new Event('input', {bubbles: true}));
    slider.dispatchEvent(new PointerEvent('pointerup', {bubbles: true}));
})"""


def _stats(times: list) -> dict:
    times = sorted(times)
    return {"median": round(statistics.median(times), 1), "p90": round(times[int(0.9 * (len(times) - 1))], 1),
            "min": round(times[0], 1), "releases": len(times)}


def browser_latency(urls: dict, reps: int, block: int = 6) -> dict:
    """Slider release -> heatmap redrawn, measured in chromium: median and p90 over ``reps`` releases
    per app (``urls``: name -> url), at budgets that change the allocation every time. The apps take
    turns in blocks of ``block`` releases, so a change of machine load hits them alike."""
    from playwright.sync_api import sync_playwright

    heat = "() => JSON.stringify(document.querySelector('#heatmap .js-plotly-plot').data.map(t => t.z))"
    times = {name: [] for name in urls}
    with sync_playwright() as p:  # Debian's chromium, as the browser tests use it
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        pages = {}
        for name, url in urls.items():
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url)
            page.wait_for_selector("#rd-plot .js-plotly-plot", timeout=120_000)
            page.get_by_role("tab", name="Budget & allocation").click()
            page.wait_for_selector("#heatmap .js-plotly-plot", timeout=60_000)
            pages[name] = page

        def release(page, i):
            v = round(3.0 + 0.35 * (i % 10), 2)
            return page.evaluate(RELEASE_TO_REDRAW, [v, page.evaluate(heat)])

        for name, page in pages.items():  # two warm-up releases each
            release(page, 0), release(page, 1)
        for start in range(0, reps, block):
            for name, page in pages.items():
                for i in range(start, min(start + block, reps)):
                    times[name].append(release(page, i + 2))
                page.wait_for_timeout(1000)  # the chained trade-off redraw ends before the other app's turn
        browser.close()
    return {name: _stats(t) for name, t in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--profile", default=None)
    ap.add_argument("--starts", type=int, default=3, help="app launches timed to page ready (median reported)")
    ap.add_argument("--reps", type=int, default=10, help="allocation round trips")
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--gen-reps", type=int, default=3, help="timed Generate calls (after one warm-up)")
    ap.add_argument("--browser-reps", type=int, default=24, help="slider releases timed in the browser")
    ap.add_argument("--no-generate", action="store_true",
                    help="skip the Generate timings (the result file keeps its previous 'generate' entry)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "app.json"))
    args = ap.parse_args(argv)

    os.environ["TQDM_DISABLE"] = "1"  # progress bars off here and in the server (its log goes to a file)
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    cmd = [sys.executable, str(REPO / "app.py"), "--model", args.model, "--port", str(port)]
    if args.profile:
        cmd += ["--profile", args.profile]
    log = tempfile.NamedTemporaryFile(prefix="dadq-app-bench-", suffix=".log", delete=False)
    starts = []

    def launch():
        """(the app's process, when it was launched); its start-to-ready time goes to ``starts``."""
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            starts.append(wait_ready(url, p, log.name) - t0)
        except BaseException:
            p.terminate()
            raise
        return p, t0

    for _ in range(max(args.starts, 1) - 1):
        p, _ = launch()
        p.terminate()
        p.wait(timeout=30)
    proc, t_start = launch()
    try:
        from gradio_client import Client

        client = Client(url, verbose=False)
        t_client = time.perf_counter()
        res = {"start_to_ready_s": round(statistics.median(starts), 2), "start_to_ready_s_all": [round(t, 2) for t in starts],
               "start_to_client_connected_s": round(t_client - t_start, 2), "start_target_s": 15.0}
        print(f"start to ready {res['start_to_ready_s']} s, median of {res['start_to_ready_s_all']} "
              f"(last start: client connected {res['start_to_client_connected_s']} s)")

        # slider release -> new heatmap: the /allocate round trip
        def allocate(b):
            return client.predict("budget", b, 0.0, b, b, "wa", "lagrangian", "per-group", "group",
                                  api_name="/allocate")

        for b in (3.0, 5.0):  # warm-up: the trade-off sweep is computed once per target and cached
            allocate(b)
        times, zs = [], []
        budgets = [3.0 + 0.25 * (i % 12) for i in range(args.reps)]
        for b in budgets:
            t0 = time.perf_counter()
            out = allocate(b)
            times.append(time.perf_counter() - t0)
            zs.append(json.loads(out[0]["plot"])["data"][0]["z"])
        changed = sum(zs[i] != zs[i - 1] for i in range(1, len(zs)))
        res["allocate_roundtrip_ms"] = {
            "median": round(1e3 * statistics.median(times), 1),
            "p90": round(1e3 * sorted(times)[int(0.9 * (len(times) - 1))], 1),
            "min": round(1e3 * min(times), 1), "calls": len(times), "heatmap_changed_calls": int(changed),
            "target_ms": 300,
        }
        print("allocate round trip", res["allocate_roundtrip_ms"])
        # the same-run baseline: the previous path (figures as gr.Plot values), in a second server
        base_port = free_port()
        base_url = f"http://127.0.0.1:{base_port}/"
        base_log = tempfile.NamedTemporaryFile(prefix="dadq-app-bench-base-", suffix=".log", delete=False)
        base_cmd = [str(base_port) if c == str(port) else c for c in cmd]
        base = subprocess.Popen(base_cmd, cwd=REPO, env=dict(env, DADQ_APP_PLOT_REDRAW="1"),
                                stdout=base_log, stderr=subprocess.STDOUT)
        try:
            wait_ready(base_url, base, base_log.name)
            lat = browser_latency({"in_place": url, "gr_plot": base_url}, args.browser_reps)
        finally:
            base.terminate()
            base.wait(10)
        how = ("chromium (Playwright, --disable-gpu): set the budget slider's value, input + pointerup; stop when "
               "the heatmap's plotted z changes in the DOM, then one animation frame")
        res["browser_release_to_heatmap_ms"] = {**lat["in_place"], "target_ms": 300, "how": how}
        res["browser_release_to_heatmap_ms_baseline"] = {
            **lat["gr_plot"], "what": "the previous path in the same run (DADQ_APP_PLOT_REDRAW=1: figures sent as "
                                      "gr.Plot values, which re-create the plot element); the apps take turns"}
        res["browser_in_place_over_baseline"] = round(lat["in_place"]["median"] / lat["gr_plot"]["median"], 3)
        print("browser release -> heatmap", res["browser_release_to_heatmap_ms"])
        print("baseline (gr.Plot values)", res["browser_release_to_heatmap_ms_baseline"],
              "ratio", res["browser_in_place_over_baseline"])
        if args.no_generate:
            old = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
            if "generate" in old:
                res["generate"] = old["generate"]
            raise _Skip

        # Generate n + n, DDIM steps, vs one FP-only run of the same size
        allocate(4.0)
        t0 = time.perf_counter()
        # warm-up: quantized weights cached
        client.predict(0, args.n, "ddim", args.steps, "", 1.0, api_name="/generate")
        first = time.perf_counter() - t0
        gen, split = [], []
        for r in range(args.gen_reps):
            t0 = time.perf_counter()
            out = client.predict(r, args.n, "ddim", args.steps, "", 1.0, api_name="/generate")
            gen.append(time.perf_counter() - t0)
            assert len(out[0]) == args.n  # one gallery item per FP | quantized | difference pair
            m = re.search(r"FP ([\d.]+) s, quantized ([\d.]+) s", out[3])
            if m:
                split.append((float(m.group(1)), float(m.group(2))))
        import dadq
        import torch

        model = dadq.load_model(args.model)
        dadq.sample(model, n=args.n, steps=args.steps, seed=0)  # warm-up
        fp_only = []
        for r in range(args.gen_reps):
            t0 = time.perf_counter()
            dadq.sample(model, n=args.n, steps=args.steps, seed=r)
            fp_only.append(time.perf_counter() - t0)
        # The same pair in this process, both ways: what running the chains side by side buys.
        from benchmarks.common import get_profile

        prof = get_profile(model, args.model, args.profile)
        qmodel = dadq.quantize(model, prof, dadq.allocate(prof, budget=4.0, target="wa"))
        pair = {True: [], False: []}
        for r in range(args.gen_reps):
            for par in (False, True):
                t0 = time.perf_counter()
                dadq.sample_pair(model, qmodel, n=args.n, steps=args.steps, seed=r, parallel=par)
                pair[par].append(time.perf_counter() - t0)
        g, f = statistics.median(gen), statistics.median(fp_only)
        res["generate"] = {
            "n": args.n, "sampler": f"DDIM-{args.steps}", "generate_first_call_s": round(first, 3),
            "generate_s_median": round(g, 3),
            "generate_s_all": [round(v, 3) for v in gen], "fp_only_s_median": round(f, 3),
            "fp_only_s_all": [round(v, 3) for v in fp_only], "generate_over_fp_only": round(g / f, 3),
            "target_generate_over_fp_only": 2.3,
            "server_fp_s": [s[0] for s in split], "server_quantized_s": [s[1] for s in split],
            "server_quantized_over_fp": round(statistics.median(q / p for p, q in split), 3) if split else None,
            "target_quantized_over_fp": 1.3,
            "fp_only_where": "dadq.sample in the benchmark process, same torch thread count as the server",
            "in_process_pair_sequential_s_median": round(statistics.median(pair[False]), 3),
            "in_process_pair_parallel_s_median": round(statistics.median(pair[True]), 3),
            "in_process_pair_sequential_over_fp_only": round(statistics.median(pair[False]) / f, 3),
            "in_process_pair_parallel_over_fp_only": round(statistics.median(pair[True]) / f, 3),
        }
        print("generate", res["generate"])
        raise _Skip
    except _Skip:
        import torch

        res["meta"] = {
            "model": args.model, "date": time.strftime("%Y-%m-%dT%H:%M:%S"), "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "gradio": __import__("gradio").__version__,
            "note": "absolute times on this 2-core machine vary ~3x between runs; compare ratios within one run",
            "load_average_1min_at_end": round(os.getloadavg()[0], 2),
            "generate_measured_now": not args.no_generate,
        }
        client.close()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(res, indent=2) + "\n")
    os.replace(tmp, out)
    print(f"wrote {out}")
    return res


if __name__ == "__main__":
    main()
