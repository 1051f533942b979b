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
# google/ddpm-cifar10-32's unet/config.json (35.7 M parameters, 3x32x32): the architecture the PTQ papers report on.
CIFAR10_DDPM_CONFIG = dict(
    sample_size=32, in_channels=3, out_channels=3, layers_per_block=2,
    block_out_channels=(128, 256, 256, 256),
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    act_fn="silu", attention_head_dim=None, norm_eps=1e-6, norm_num_groups=32, center_input_sample=False,
    downsample_padding=0, flip_sin_to_cos=False, freq_shift=1, mid_block_scale_factor=1, time_embedding_type="positional",
)
QUANTIZABLE = (nn.Conv2d, nn.Linear)
# The quantizable layers that read the model input x_t itself: a diffusers UNet's conv_in, a DiT's patch
# embedding. ``allocate(fp_input=True)`` keeps their input activations at full precision.
INPUT_LAYERS = ("conv_in", "pos_embed.proj")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


# The denoisers dadq runs, by diffusers class name -> dadq's kind.
MODEL_KINDS = {
    "UNet2DModel": "unet",                   # unconditional, or class-conditional with num_class_embeds
    "DiTTransformer2DModel": "dit",          # class-conditional diffusion transformer, pixel space
    "UNet2DConditionModel": "unet-cond",     # cross-attention on given encoder_hidden_states
}
SUPPORTED_KINDS = ("UNet2DModel (unconditional, or class-conditional with num_class_embeds), "
                   "DiTTransformer2DModel (pixel space), UNet2DConditionModel (given encoder_hidden_states)")


def model_kind(net: nn.Module) -> str:
    """dadq's kind of a denoiser ("unet", "dit", "unet-cond"); a clear error for any other model."""
    inner = getattr(net, "fp_unet", net)  # a QuantizedUNet reports its FP original
    kind = MODEL_KINDS.get(type(inner).__name__)
    if kind is None:
        raise ValueError(f"dadq does not support {type(inner).__name__} models; supported kinds: {SUPPORTED_KINDS}.")
    return kind


@dataclass
class DiffusionModel:
    """A noise-prediction denoiser ``unet(x_t, t, ...) -> eps`` plus its noise schedule, and its conditioning.

    ``unet`` is any supported denoiser (``MODEL_KINDS``), or dadq's quantized wrapper of one.
    Conditioning:
      - class-conditional models (a UNet2DModel with ``num_class_embeds``, a DiT): ``num_classes`` labels
        0..num_classes-1 and, where the model has one, a ``null_class`` (the unconditional branch of
        classifier-free guidance). A DiT's null class is diffusers' own: index ``num_embeds_ada_norm`` of its
        label table. A UNet2DModel declares one with ``null_class`` (load_model argument, or ``dadq.json``
        in its folder); then its classes are 0..null_class-1.
      - a UNet2DConditionModel: ``encoder_hidden_states`` [K, S, D], the conditions that calibration and
        default sampling cycle through, and ``null_encoder_hidden_states`` [S, D] (or [1, S, D]), the
        unconditional input for guidance.
    ``guidance_scale``: the model's default classifier-free guidance scale (None: unguided).
    """

    unet: nn.Module
    scheduler: object  # diffusers DDPMScheduler
    source: str = "config"
    info: dict = field(default_factory=dict)
    null_class: int | None = None
    guidance_scale: float | None = None
    encoder_hidden_states: torch.Tensor | None = None
    null_encoder_hidden_states: torch.Tensor | None = None

    def __post_init__(self):
        kind = model_kind(self.unet)
        use_fast_layout(self.unet)
        cfg = self.unet.config
        if kind == "dit":
            table = getattr(getattr(self.fp_net, "transformer_blocks", [None])[0], "norm1", None)
            rows = table.emb.class_embedder.embedding_table.num_embeddings if table is not None else None
            n = int(cfg.num_embeds_ada_norm)
            if self.null_class is None and rows is not None and rows > n:
                self.null_class = n
        if self.null_class is not None:
            total = self._label_rows()
            if total is None or not 0 <= int(self.null_class) < total:
                raise ValueError(f"null_class={self.null_class}: this {type(self.fp_net).__name__} has "
                                 f"{total or 0} class embeddings.")
            self.null_class = int(self.null_class)
        if kind == "unet-cond" and self.encoder_hidden_states is not None:
            self.encoder_hidden_states = self._check_ehs(self.encoder_hidden_states, "encoder_hidden_states")
        if self.null_encoder_hidden_states is not None:
            e = self._check_ehs(self.null_encoder_hidden_states, "null_encoder_hidden_states")
            if e.shape[0] != 1:
                raise ValueError(f"null_encoder_hidden_states: one condition [S, D] expected, got {tuple(e.shape)}.")
            self.null_encoder_hidden_states = e
            if self.encoder_hidden_states is not None and self.encoder_hidden_states.shape[1] != e.shape[1]:
                raise ValueError(f"null_encoder_hidden_states has sequence length {e.shape[1]}, the conditions "
                                 f"{self.encoder_hidden_states.shape[1]}: guidance batches them together.")

    # --- what the model is ---------------------------------------------------------------------
    @property
    def fp_net(self) -> nn.Module:
        return getattr(self.unet, "fp_unet", self.unet)

    @property
    def kind(self) -> str:
        return model_kind(self.unet)

    def _label_rows(self) -> int | None:
        """Rows of the class-label embedding (classes plus a null class, if any), or None."""
        net = self.fp_net
        if self.kind == "dit":
            return int(net.transformer_blocks[0].norm1.emb.class_embedder.embedding_table.num_embeddings)
        n = getattr(net.config, "num_class_embeds", None)
        if n is not None and getattr(net.config, "class_embed_type", None) is None:
            return int(n)
        return None

    @property
    def num_classes(self) -> int | None:
        """Number of real classes (labels 0..num_classes-1), without the null class; None: no labels."""
        if self.kind == "dit":
            return int(self.unet.config.num_embeds_ada_norm)
        rows = self._label_rows()
        if rows is None:
            return None
        return self.null_class if self.null_class is not None else rows

    @property
    def conditioning(self) -> str | None:
        """"class" (labels), "text" (encoder_hidden_states) or None (unconditional)."""
        if self.kind == "unet-cond":
            return "text"
        return "class" if self.num_classes is not None else None

    @property
    def can_guide(self) -> bool:
        return self.null_class is not None if self.conditioning == "class" else (
            self.conditioning == "text" and self.null_encoder_hidden_states is not None)

    @property
    def ehs_shape(self) -> tuple[int | None, int]:
        """(sequence length or None, feature dim) that encoder_hidden_states must have."""
        cfg = self.unet.config
        dim = cfg.encoder_hid_dim if getattr(cfg, "encoder_hid_dim_type", None) else cfg.cross_attention_dim
        if not isinstance(dim, int):
            dim = dim[0]
        seq = self.encoder_hidden_states.shape[1] if self.encoder_hidden_states is not None else None
        return seq, int(dim)

    def _check_ehs(self, e, what: str) -> torch.Tensor:
        if self.kind != "unet-cond":
            raise ValueError(f"{what}: only a UNet2DConditionModel takes encoder_hidden_states; this is a "
                             f"{type(self.fp_net).__name__}.")
        e = torch.as_tensor(e, dtype=torch.float32)
        if e.ndim == 2:
            e = e[None]
        _, dim = self.ehs_shape
        if e.ndim != 3 or e.shape[-1] != dim:
            raise ValueError(f"{what} has shape {tuple(e.shape)}; expected [batch, sequence, {dim}] "
                             f"(the model's cross_attention_dim is {dim}).")
        return e

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

    def with_net(self, net: nn.Module, **changes) -> "DiffusionModel":
        """The same model's conditioning and schedule around another denoiser (e.g. its quantized copy)."""
        kw = dict(unet=net, scheduler=self.scheduler, source=self.source, info=dict(self.info),
                  null_class=self.null_class, guidance_scale=self.guidance_scale,
                  encoder_hidden_states=self.encoder_hidden_states,
                  null_encoder_hidden_states=self.null_encoder_hidden_states)
        kw.update(changes)
        return DiffusionModel(**kw)

    # --- conditioning ---------------------------------------------------------------------------
    def default_labels(self, n: int) -> torch.Tensor | None:
        """Labels 0, 1, ..., K-1, 0, 1, ... for n samples of a class-conditional model (None otherwise)."""
        k = self.num_classes
        return None if k is None or self.conditioning != "class" else torch.arange(n) % k

    def check_labels(self, class_labels, n: int) -> torch.Tensor | None:
        """class_labels (int, sequence or tensor) -> int64 [n]; errors for a model without labels or out of range."""
        if class_labels is None:
            return None
        if self.conditioning != "class":
            raise ValueError(f"class_labels given, but this {type(self.fp_net).__name__} is not class-conditional "
                             "(a UNet2DModel needs num_class_embeds; a DiT always has labels).")
        y = torch.as_tensor(class_labels).long().flatten().cpu()
        if y.numel() == 1 and n > 1:
            y = y.expand(n).clone()
        if y.numel() != n:
            raise ValueError(f"{y.numel()} class labels for {n} samples; give one label, or one per sample.")
        k = self.num_classes
        bad = (y < 0) | (y >= k)
        if self.null_class is not None:
            bad &= y != self.null_class
        if bool(bad.any()):
            raise ValueError(f"class label {int(y[bad][0])} is out of range: this model has classes 0..{k - 1}"
                             + (f" (and the null class {self.null_class})." if self.null_class is not None else "."))
        return y

    def check_guidance(self, guidance_scale) -> float | None:
        """The effective guidance scale: None or 1 run the conditional pass only; any other s needs a null condition."""
        if guidance_scale is None:
            return None
        s = float(guidance_scale)
        if not s >= 0:
            raise ValueError(f"guidance_scale={guidance_scale}: use a scale >= 0 (1 = no guidance).")
        if s == 1.0:
            return None
        if not self.can_guide:
            what = ("a null class" if self.conditioning == "class" else
                    "null_encoder_hidden_states" if self.conditioning == "text" else "any conditioning")
            raise ValueError(f"guidance_scale={s}: classifier-free guidance needs {what}, and this "
                             f"{type(self.fp_net).__name__} ({self.source}) has none."
                             + (" Declare the class trained as unconditional with null_class=..." if
                                self.conditioning == "class" else ""))
        return s

    def check_ehs(self, encoder_hidden_states, n: int) -> torch.Tensor | None:
        """encoder_hidden_states -> float32 [n, S, D] (one condition is repeated for all n)."""
        if encoder_hidden_states is None:
            return None
        e = self._check_ehs(encoder_hidden_states, "encoder_hidden_states")
        if e.shape[0] == 1 and n > 1:
            e = e.expand(n, -1, -1)
        if e.shape[0] != n:
            raise ValueError(f"encoder_hidden_states has {e.shape[0]} conditions for {n} samples; give 1 or {n}.")
        return e

    def _net_eps(self, x, t, y, e) -> torch.Tensor:
        kw = {}
        if y is not None:
            kw["class_labels"] = y
        if self.kind == "unet-cond":
            kw["encoder_hidden_states"] = e
        out = self.unet(x, t, **kw).sample
        c = x.shape[1]
        out = out[:, :c] if out.shape[1] > c else out  # learned-sigma models: eps is the first C channels
        return self.output_to_eps(out, x, t)

    @property
    def prediction_type(self) -> str:
        """What the network outputs, from its scheduler: "epsilon", "v_prediction" or "sample" (x0)."""
        return str(getattr(self.scheduler.config, "prediction_type", "epsilon"))

    def sampler_config(self) -> dict:
        """The scheduler config that a DDIM/DDPM sampler stepping on ``eps`` needs: the model's own, told
        that it gets the noise (``eps`` converts whatever the network predicts)."""
        return dict(self.scheduler.config, prediction_type="epsilon")

    def output_to_eps(self, out: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The noise eps [N, C, H, W] that the network output ``out`` means at x_t [N, C, H, W], timesteps t [N]:
        eps = sqrt(a) v + sqrt(1-a) x_t for v-prediction, (x_t - sqrt(a) x0) / sqrt(1-a) for x0-prediction,
        a = alphas_cumprod[t]. dadq measures, guides and samples in eps, whatever the model predicts."""
        kind = self.prediction_type
        if kind == "epsilon":
            return out
        a = self.scheduler.alphas_cumprod.to(x.device, x.dtype)[t.long()].view(-1, 1, 1, 1)
        if kind == "v_prediction":
            return a.sqrt() * out + (1 - a).sqrt() * x
        if kind == "sample":
            return (x - a.sqrt() * out) / (1 - a).sqrt()
        raise ValueError(f"prediction_type {kind!r} of this model's scheduler: dadq runs 'epsilon', "
                         "'v_prediction' and 'sample' models.")

    @torch.no_grad()
    def eps(self, x: torch.Tensor, t: torch.Tensor, class_labels=None, encoder_hidden_states=None,
            guidance_scale: float | None = None) -> torch.Tensor:
        """Predicted noise [N, C, H, W] for inputs x_t [N, C, H, W] at integer timesteps t [N].

        class_labels: int64 [N] (or one int) for class-conditional models; None runs the null class where
          the model has one. encoder_hidden_states: [N or 1, S, D] for a UNet2DConditionModel (default: the
          model's first condition). guidance_scale s (None or 1: the conditional pass alone): classifier-free
          guidance eps_uncond + s (eps_cond - eps_uncond), both passes in one batch of 2N (conditional first).
        """
        n = x.shape[0]
        s = self.check_guidance(guidance_scale)
        y = e = None
        if self.conditioning == "class":
            y = self.check_labels(class_labels, n)
            if y is None:
                if self.null_class is None:
                    raise ValueError(f"this class-conditional {type(self.fp_net).__name__} needs class_labels "
                                     f"(0..{self.num_classes - 1}); it has no null class for unconditional samples.")
                y = torch.full((n,), self.null_class, dtype=torch.long)
            y = y.to(x.device)
        elif class_labels is not None:
            self.check_labels(class_labels, n)  # raises: not class-conditional
        if self.kind == "unet-cond":
            e = self.check_ehs(encoder_hidden_states, n)
            if e is None:
                if self.encoder_hidden_states is None:
                    raise ValueError("a UNet2DConditionModel needs encoder_hidden_states [N, S, D]: pass them, or give "
                                     "load_model(..., encoder_hidden_states=...) a default set.")
                e = self.check_ehs(self.encoder_hidden_states[:1], n)
            e = e.to(x.device, self.fp_net.dtype)
        elif encoder_hidden_states is not None:
            self._check_ehs(encoder_hidden_states, "encoder_hidden_states")  # raises: wrong kind
        with full_fp32(x.device):
            if s is None:
                return self._net_eps(x, t, y, e)
            y2 = None if y is None else torch.cat([y, torch.full_like(y, self.null_class)])
            e2 = None if e is None else torch.cat(
                [e, self.null_encoder_hidden_states.to(e.device, e.dtype).expand(n, -1, -1)])
            both = self._net_eps(torch.cat([x, x]), torch.cat([t, t]), y2, e2)
            cond, uncond = both[:n], both[n:]
            return uncond + s * (cond - uncond)

    def fingerprint(self) -> str:
        return fingerprint(self.unet)


FAST_LAYOUT = True  # benchmarks set it False to time the default layout beside it


def use_fast_layout(net: nn.Module) -> None:
    """Put a denoiser's 4-D (convolution) weights in channels_last on the CPU, in place.

    oneDNN runs the small UNets' convolutions faster in that layout than in the default one
    (``python -m benchmarks.sampling_speed --layout`` times both); outputs differ only by float rounding
    (the order of sums; tests bound it). Weights stay shared, so a QuantizedUNet built on the model follows it.
    No-op on a GPU, where the default layout is what the GPU results were measured in.
    """
    if FAST_LAYOUT and next(net.parameters()).device.type == "cpu":
        net.to(memory_format=torch.channels_last)


def fast_layout_like(w: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """w with ref's strides (a quantized copy of a weight ``ref`` kept as fast as ref itself).

    Strides, not a memory-format test: a weight with one input channel (conv_in of a 1-channel model)
    is contiguous in both formats, and oneDNN picks the output layout from its strides. A copy with
    default strides there turns every activation after conv_in back to the default layout."""
    if w.shape != ref.shape or w.stride() == ref.stride():
        return w
    return torch.empty_like(ref, dtype=w.dtype).copy_(w)


@contextlib.contextmanager
def full_fp32(device: torch.device):
    """True float32 convolutions on a GPU. cuDNN runs float32 convolutions in TF32 (10-bit mantissa) by
    default, which perturbs the FP reference by an error of the same order as the quantization being
    measured (docs/results.md, GPU section). No-op on the CPU."""
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


NAMED_MODELS = {"default": DEFAULT_MODEL_DIR, "dit": ASSETS_DIR / "dit"}  # the shipped models, by name
_SUBFOLDERS = ("unet", "transformer")  # where diffusers pipelines keep the denoiser


def _denoiser_class(class_name: str | None, config: dict | None = None):
    """The diffusers class for a config's ``_class_name`` (or, without one, guessed from its keys)."""
    import diffusers

    if class_name is None:
        keys = set(config or {})
        class_name = ("DiTTransformer2DModel" if {"num_embeds_ada_norm", "patch_size"} & keys else
                      "UNet2DConditionModel" if "cross_attention_dim" in keys else "UNet2DModel")
    if class_name not in MODEL_KINDS:
        raise ValueError(f"dadq does not support {class_name} models; supported kinds: {SUPPORTED_KINDS}.")
    return getattr(diffusers, class_name)


def _conditioning_kwargs(info: dict, null_class, guidance_scale, encoder_hidden_states, null_encoder_hidden_states):
    """Conditioning for DiffusionModel: explicit arguments win over a folder's dadq.json."""
    return dict(null_class=info.get("null_class") if null_class is None else null_class,
                guidance_scale=info.get("guidance_scale") if guidance_scale is None else guidance_scale,
                encoder_hidden_states=encoder_hidden_states, null_encoder_hidden_states=null_encoder_hidden_states)


def _from_folder(folder: Path, source: str, **cond) -> DiffusionModel:
    """A diffusers folder: pipeline layout (unet/ or transformer/, scheduler/) or a bare model folder.
    An optional ``dadq.json`` beside them declares {"null_class": int, "guidance_scale": float}."""
    from diffusers import DDPMScheduler

    sub = next((d for d in _SUBFOLDERS if (folder / d / "config.json").exists()), None)
    model_dir = folder / sub if sub else folder
    if not (model_dir / "config.json").exists():
        raise ValueError(
            f"{folder} is not a diffusers model folder: expected unet/config.json or transformer/config.json "
            "(pipeline save_pretrained layout) or config.json with diffusion_pytorch_model.safetensors beside it."
        )
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{model_dir / 'config.json'} is not valid JSON ({e}).") from None
    cls = _denoiser_class(config.get("_class_name"), config)
    unet = cls.from_pretrained(folder, subfolder=sub) if sub else cls.from_pretrained(folder)
    sched_dir = folder / "scheduler"
    scheduler = (DDPMScheduler.from_pretrained(folder, subfolder="scheduler")
                 if sub and (sched_dir / "scheduler_config.json").exists() else default_scheduler())
    info = {}
    if (folder / "dadq.json").exists():
        info = json.loads((folder / "dadq.json").read_text())
    unet.eval()
    return DiffusionModel(unet, scheduler, source=source, info=info,
                          **_conditioning_kwargs(info, **cond))


def from_config(config: dict, seed: int = 0, num_timesteps: int = 1000, **cond) -> DiffusionModel:
    """A denoiser with random (seeded) weights built from a config dict: a UNet2DModel, or the class its
    ``_class_name`` names (DiTTransformer2DModel, UNet2DConditionModel); without one, a config with
    ``patch_size``/``num_embeds_ada_norm`` builds a DiT and one with ``cross_attention_dim`` a
    UNet2DConditionModel. ``cond``: null_class, guidance_scale, encoder_hidden_states, null_encoder_hidden_states."""
    cls = _denoiser_class(config.get("_class_name"), config)
    torch.manual_seed(seed)
    cfg = {k: v for k, v in config.items() if not k.startswith("_")}
    try:
        unet = cls(**cfg)
    except TypeError as e:
        raise ValueError(f"invalid {cls.__name__} config: {e}. Pass keys of diffusers.{cls.__name__}.") from None
    unet.eval()
    return DiffusionModel(unet, default_scheduler(num_timesteps), source="config",
                          info={"config": cfg, "class": cls.__name__}, **_conditioning_kwargs({}, **{
                              k: cond.get(k) for k in ("null_class", "guidance_scale", "encoder_hidden_states",
                                                       "null_encoder_hidden_states")}))


def load_model(source: str | dict | Path = "default", device: str | torch.device | None = None,
               seed: int = 0, cache_dir: str | None = None, local_files_only: bool = False, *,
               null_class: int | None = None, guidance_scale: float | None = None,
               encoder_hidden_states: torch.Tensor | None = None,
               null_encoder_hidden_states: torch.Tensor | None = None) -> DiffusionModel:
    """Load a denoiser: a UNet2DModel (unconditional or class-conditional), a DiTTransformer2DModel or a
    UNet2DConditionModel (``MODEL_KINDS``); any other model class is an error that names these.

    source:
      - "default": the shipped MNIST DDPM in assets/default; "dit": the shipped class-conditional MNIST
        DiT in assets/dit (null class 10, default guidance in its dadq.json);
      - a local folder in pipeline save_pretrained layout (unet/ or transformer/, + scheduler/) or a bare
        model folder;
      - a path to a config .json, or a config dict: random weights from ``seed`` (``_class_name`` picks the
        class, see ``from_config``);
      - a Hugging Face Hub id like "google/ddpm-cifar10-32" (downloaded by huggingface_hub, or
        taken from its cache with ``local_files_only``).
    device: "cpu", "cuda", ... (default: cpu).
    Conditioning (see DiffusionModel): null_class (a class-conditional UNet2DModel's unconditional class),
    guidance_scale (the default CFG scale), encoder_hidden_states [K, S, D] and null_encoder_hidden_states
    [S, D] (a UNet2DConditionModel's conditions and its unconditional input).
    """
    cond = dict(null_class=null_class, guidance_scale=guidance_scale, encoder_hidden_states=encoder_hidden_states,
                null_encoder_hidden_states=null_encoder_hidden_states)
    if isinstance(source, dict):
        model = from_config(source, seed=seed, **cond)
    else:
        src = str(source)
        path = NAMED_MODELS[src] if src in NAMED_MODELS else Path(src).expanduser()
        if src == "dit" and not (path / "transformer" / "config.json").exists():
            raise ValueError(f"the shipped DiT is missing from {path}: use a checkout, or train it with "
                             "python -m scripts.train_dit --out assets/dit.")
        if src == "default" and not (path / "unet" / "config.json").exists():
            raise ValueError(f"the default model is missing from {path}: it ships in the repository's assets/, so "
                             "use a checkout (pip install -e .), or rebuild it with python -m scripts.train_default.")
        if path.is_dir():
            model = _from_folder(path, source=src, **cond)
        elif path.is_file() and path.suffix == ".json":
            try:
                config = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} is not valid JSON ({e}); give a UNet2DModel config file.") from None
            model = from_config(config, seed=seed, **cond)
            model.source = src
        elif _HUB_ID.match(src) and not path.exists():
            model = _from_hub(src, cache_dir=cache_dir, local_files_only=local_files_only, **cond)
        else:
            raise ValueError(
                f"no model at {src!r}: give 'default', a local diffusers folder (unet/ + scheduler/), "
                "a UNet2DModel config .json, or a hub id such as google/ddpm-cifar10-32."
            )
    if device is not None:
        model.unet.to(device)
    return model


def _from_hub(repo_id: str, cache_dir: str | None, local_files_only: bool, **cond) -> DiffusionModel:
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(
            repo_id, cache_dir=cache_dir, local_files_only=local_files_only,
            allow_patterns=["*.json", "*.safetensors", "unet/*", "transformer/*", "scheduler/*"],
        )
    except Exception as e:  # offline, unknown repo, gated...: one clear line, not a stack
        raise ValueError(
            f"could not fetch hub model {repo_id!r} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
            "Check the id and the network, or download it and pass the local folder instead."
        ) from None
    return _from_folder(Path(folder), source=repo_id, **cond)


def shipped_file(source: str, name: str) -> Path | None:
    """A file that ships with a model, ``name`` in its folder (a named model's, e.g. assets/default/
    for 'default', or a local model folder); None where there is none."""
    src = str(source)
    folder = NAMED_MODELS[src] if src in NAMED_MODELS else Path(src).expanduser()
    path = folder / name
    return path if path.is_file() else None


def default_profile_path(source: str) -> Path | None:
    """The profile that ships with a model: profile.safetensors in its folder, or None."""
    return shipped_file(source, "profile.safetensors")
