"""Shared helpers of the app tests (tests/test_app.py, tests/test_browser.py): tiny real models with
real profiles, a real server on a free port, and Debian's chromium.

Not a conftest.py (pytest does not collect it); the test modules import it.
"""
from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import torch  # noqa: E402

torch.set_num_threads(1)  # the CI box has 2 cores; keep the server's sampling to one

REPO = Path(__file__).resolve().parent.parent

DEFAULT_PROFILE = REPO / "assets" / "default" / "profile.safetensors"
from dadq.plots import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (one home: the figure export uses them too)

_ASSETS: dict = {}


def _tiny_unet(size: int, seed: int):
    from diffusers import UNet2DModel

    from tests.conftest import TINY  # the one tiny test UNet config

    torch.manual_seed(seed)
    return UNet2DModel(**{**TINY, "sample_size": size})


def save_tiny(folder: Path, size: int = 16, seed: int = 0) -> Path:
    """A random tiny UNet2DModel + DDPMScheduler (T=1000) saved in DDPMPipeline layout."""
    from diffusers import DDPMPipeline, DDPMScheduler

    DDPMPipeline(unet=_tiny_unet(size, seed), scheduler=DDPMScheduler(num_train_timesteps=1000)).save_pretrained(folder)
    return folder


def tiny_assets() -> dict:
    """Built once per test process in a temp folder:
    tiny     16x16 model (seed 0) with its profile (G=3, bits 2/4/8, 2 calibration samples / group)
    tiny28   28x28 model (seed 1) without a profile (to load, profile and score FID in the app)
    """
    if not _ASSETS:
        import dadq

        root = Path(tempfile.mkdtemp(prefix="dadq-app-test-"))
        tiny = save_tiny(root / "tiny", 16, 0)
        prof = dadq.profile(dadq.load_model(str(tiny)), groups=3, bits=[2, 4, 8], calib_per_group=2)
        prof_path = prof.save(root / "tiny_profile.safetensors")
        tiny28 = save_tiny(root / "tiny28", 28, 1)
        _ASSETS.update(root=root, tiny=str(tiny), tiny_profile=str(prof_path), tiny28=str(tiny28))
    return _ASSETS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(model_src: str, profile_path: str | None):
    """build_demo + launch(prevent_thread_lock=True) on a free port: (demo, url)."""
    import app

    demo = app.build_demo(model_src, profile_path)
    _, url, _ = app.launch(demo, prevent_thread_lock=True, server_port=free_port(), quiet=True)
    return demo, url


def launch_chromium(playwright):
    """Debian's chromium, required: a missing browser is an error, not a skip."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium); "
                           "the browser tests are required.")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
