"""Screenshots of the app on the shipped class-conditional DiT (docs/app_dit_*.png).

    python -m scripts.dit_screenshots [--out docs]

Starts the app on ``--model dit`` (its shipped profile), generates 16 + 16 samples of the digits 3 and 7 at the
model's default guidance with DDIM-20 (the card's sampler), and shoots the Samples and Budget & allocation tabs
in chromium (the same browser the tests use).
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
    ap.add_argument("--out", default="docs", help="folder of the PNGs (default docs)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "app.py", "--model", "dit", "--port", str(port)])
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
            page.locator("#class-labels textarea, #class-labels input").first.fill("3,7")
            page.locator("#generate-btn").click()
            page.wait_for_function("() => document.querySelector('#generate-info').innerText.includes('16 + 16')",
                                   timeout=600_000)
            page.wait_for_timeout(700)
            page.screenshot(path=str(out / "app_dit_samples.png"), full_page=True)
            page.get_by_role("tab", name="Budget & allocation").click()
            page.wait_for_selector("#heatmap .js-plotly-plot", timeout=60_000)
            page.wait_for_timeout(700)
            page.screenshot(path=str(out / "app_dit_allocation.png"), full_page=True)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(f"wrote {out / 'app_dit_samples.png'} and {out / 'app_dit_allocation.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
