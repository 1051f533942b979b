"""Loading diffusion models: the shipped default, a local diffusers folder, a hub id, or a config.

A ``DiffusionModel`` bundles the denoiser (a diffusers ``UNet2DModel``, or dadq's quantized
wrapper of one) with its ``DDPMScheduler``. Everything else in dadq takes this one type.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

# The repository's assets/ folder: the shipped models, the FID network and the shipped test data.
# dadq finds it beside the package, so it is there for a checkout and an editable install (pip install -e .).
ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_MODEL_DIR = ASSETS_DIR / "default"  # the embedded default: model, profile, FID network and reference
# The embedded default's UNet2DModel (about 1 M parameters, 1x28x28), as scripts/train_default.py builds it.
DEFAULT_UNET_CONFIG = dict(
    sample_size=28,
    in_channels=1,
    out_channels=1,
    layers_per_block=1,
    block_out_channels=(32, 64, 64),
    down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
    norm_num_groups=8,
    attention_head_dim=32,
)
QUANTIZABLE = (nn.Conv2d, nn.Linear)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class DiffusionModel:
    """A noise-prediction denoiser ``unet(x_t, t) -> eps`` plus its noise schedule."""

    unet: nn.Module
    scheduler: object  # diffusers DDPMScheduler
    source: str = "config"
    info: dict = field(default_factory=dict)

    @property
    def num_timesteps(self) -> int:
        return int(self.scheduler.config.num_train_timesteps)

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        cfg = self.unet.config
        size = cfg.sample_size
        h, w = (size, size) if isinstance(size, int) else tuple(size)
        return (cfg.in_channels, h, w)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @torch.no_grad()
    def eps(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Predicted noise [N, C, H, W] for inputs x_t [N, C, H, W] at integer timesteps t [N]."""
        with full_fp32(x.device):
            return self.unet(x, t).sample

    def fingerprint(self) -> str:
        return fingerprint(self.unet)


@contextlib.contextmanager
def full_fp32(device: torch.device):
    """True float32 convolutions on a GPU. cuDNN runs float32 convolutions in TF32 (10-bit mantissa) by
    default: on an H200 that moved the default model's FP DDIM-10 samples by up to 4.7e-2 per pixel
    (1.4e-4 in float32), and the mean gap between CPU and GPU 4-bit samples to a fifth of what 4-bit
    quantization itself does, so the FP reference would carry its own quantization. No-op on the CPU."""
    if device.type != "cuda":
        yield
        return
    cudnn = torch.backends.cudnn
    before = cudnn.allow_tf32
    cudnn.allow_tf32 = False
    try:
        yield
    finally:
        cudnn.allow_tf32 = before


def device_name(device: torch.device) -> str:
    """"cpu", or the GPU's name (e.g. "NVIDIA H200"): what results record as the machine they ran on."""
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def fingerprint(unet: nn.Module) -> str:
    """sha256 over parameter names, shapes and bytes: two models match iff their weights do."""
    inner = getattr(unet, "fp_unet", unet)  # a QuantizedUNet reports its FP original
    h = hashlib.sha256()
    for name, tensor in inner.state_dict().items():
        t = tensor.detach().to("cpu", torch.float32).contiguous()
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def quantizable_layers(unet: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every nn.Conv2d and nn.Linear of the denoiser, in module-definition order."""
    return [(n, m) for n, m in unet.named_modules() if isinstance(m, QUANTIZABLE)]


def default_scheduler(num_timesteps: int = 1000):
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=num_timesteps, beta_schedule="linear", clip_sample=True)


def _from_folder(folder: Path, source: str) -> DiffusionModel:
    from diffusers import DDPMScheduler, UNet2DModel

    if (folder / "unet" / "config.json").exists():
        unet = UNet2DModel.from_pretrained(folder, subfolder="unet")
        sched_dir = folder / "scheduler"
        scheduler = (DDPMScheduler.from_pretrained(folder, subfolder="scheduler")
                     if (sched_dir / "scheduler_config.json").exists() else default_scheduler())
    elif (folder / "config.json").exists():
        unet = UNet2DModel.from_pretrained(folder)
        scheduler = default_scheduler()
    else:
        raise ValueError(
            f"{folder} is not a diffusers model folder: expected unet/config.json (DDPMPipeline.save_pretrained "
            "layout) or config.json with diffusion_pytorch_model.safetensors beside it."
        )
    unet.eval()
    return DiffusionModel(unet, scheduler, source=source)


def from_config(config: dict, seed: int = 0, num_timesteps: int = 1000) -> DiffusionModel:
    """A UNet2DModel with random (seeded) weights built from a config dict."""
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    cfg = {k: v for k, v in config.items() if not k.startswith("_")}
    try:
        unet = UNet2DModel(**cfg)
    except TypeError as e:
        raise ValueError(f"invalid UNet2DModel config: {e}. Pass keys of diffusers.UNet2DModel.") from None
    unet.eval()
    return DiffusionModel(unet, default_scheduler(num_timesteps), source="config", info={"config": cfg})


def load_model(source: str | dict | Path = "default", device: str | torch.device | None = None,
               seed: int = 0, cache_dir: str | None = None, local_files_only: bool = False) -> DiffusionModel:
    """Load a denoiser.

    source:
      - "default": the shipped MNIST DDPM in assets/default;
      - a local folder in DDPMPipeline.save_pretrained layout (unet/ + scheduler/) or a bare UNet folder;
      - a path to a UNet2DModel config .json, or a config dict: random weights from ``seed``;
      - a Hugging Face Hub id like "google/ddpm-cifar10-32" (downloaded by huggingface_hub, or
        taken from its cache with ``local_files_only``).
    device: "cpu", "cuda", ... (default: cpu).
    """
    if isinstance(source, dict):
        model = from_config(source, seed=seed)
    else:
        src = str(source)
        path = DEFAULT_MODEL_DIR if src == "default" else Path(src).expanduser()
        if src == "default" and not (path / "unet" / "config.json").exists():
            raise ValueError(f"the default model is missing from {path}: it ships in the repository's assets/, so "
                             "use a checkout (pip install -e .), or rebuild it with python -m scripts.train_default.")
        if path.is_dir():
            model = _from_folder(path, source=src)
        elif path.is_file() and path.suffix == ".json":
            try:
                config = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} is not valid JSON ({e}); give a UNet2DModel config file.") from None
            model = from_config(config, seed=seed)
            model.source = src
        elif _HUB_ID.match(src) and not path.exists():
            model = _from_hub(src, cache_dir=cache_dir, local_files_only=local_files_only)
        else:
            raise ValueError(
                f"no model at {src!r}: give 'default', a local diffusers folder (unet/ + scheduler/), "
                "a UNet2DModel config .json, or a hub id such as google/ddpm-cifar10-32."
            )
    if device is not None:
        model.unet.to(device)
    return model


def _from_hub(repo_id: str, cache_dir: str | None, local_files_only: bool) -> DiffusionModel:
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            repo_id, cache_dir=cache_dir, local_files_only=local_files_only,
            allow_patterns=["*.json", "*.safetensors", "unet/*", "scheduler/*"],
        )
    except Exception as e:  # offline, unknown repo, gated...: one clear line, not a stack
        raise ValueError(
            f"could not fetch hub model {repo_id!r} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
            "Check the id and the network, or download it and pass the local folder instead."
        ) from None
    return _from_folder(Path(folder), source=repo_id)
