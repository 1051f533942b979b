"""Screenshots of the app on the other shipped models (docs/app_<name>_*.png; the default model's come from
tests/test_browser.py).

    python -m scripts.app_screenshots                          # the class-conditional DiT -> docs/app_dit_*.png
    python -m scripts.app_screenshots --model assets/fashion --name fashion

Starts the app on ``--model`` (with the profile in its folder), generates 16 + 16 samples at DDIM-20 (for a
class-conditional model: the digits 3 and 7 at its default guidance), and shoots the Samples and Budget &
allocation tabs in chromium (the same browser the tests use).
"""
from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(url: str, proc, timeout: float = 180) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with status {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"the app did not answer at {url} within {timeout:.0f} s")


def _set_number(page, label: str, value) -> None:
    box = page.get_by_label(f"number input for {label}")
    box.fill(str(value))
    box.press("Tab")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="dit", help="what app.py --model takes (default: the shipped DiT)")
    ap.add_argument("--name", default="dit", help="file names: app_<name>_samples.png, app_<name>_allocation.png")
    ap.add_argument("--labels", default="3,7", help="class labels for a class-conditional model")
    ap.add_argument("--out", default="docs", help="folder of the PNGs (default docs)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    shots = [out / f"app_{args.name}_{tab}.png" for tab in ("samples", "allocation")]
    proc = subprocess.Popen([sys.executable, "app.py", "--model", args.model, "--port", str(port)])
    try:
        _wait_up(url, proc)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(url)
            page.wait_for_selector("#rd-plot .js-plotly-plot", timeout=120_000)
            page.get_by_role("tab", name="Samples").click()
            _set_number(page, "count", 16)
            _set_number(page, "DDIM steps", 20)
            labels = page.locator("#class-labels textarea, #class-labels input").first
            if labels.is_enabled():  # only a class-conditional model takes labels
                labels.fill(args.labels)
            page.locator("#generate-btn").click()
            page.wait_for_function("() => document.querySelector('#generate-info').innerText.includes('16 + 16')",
                                   timeout=600_000)
            page.wait_for_timeout(700)
            page.screenshot(path=str(shots[0]), full_page=True)
            page.get_by_role("tab", name="Budget & allocation").click()
            page.wait_for_selector("#heatmap .js-plotly-plot", timeout=60_000)
            page.wait_for_timeout(700)
            page.screenshot(path=str(shots[1]), full_page=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"wrote {shots[0]} and {shots[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
