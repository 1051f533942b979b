"""dadq: distribution-aware, mixed-precision post-training quantization of diffusion models.

    import dadq
    model = dadq.load_model("default")
    prof = dadq.profile(model, groups=10, bits=range(2, 9))
    alloc = dadq.allocate(prof, budget=4.0, target="wa", method="lagrangian")
    qmodel = dadq.quantize(model, prof, alloc)
    fp, q = dadq.sample_pair(model, qmodel, n=16, steps=50, seed=0)
"""
from .additivity import additivity, measure_distortion
from .allocate import Allocation, allocate, lagrangian_choice, rd_sweep, solve
from .distortion import distortion
from .groups import TimestepGroups
from .models import DiffusionModel, load_model
from .profile import Profile, profile
from .quant import QuantizedUNet, quantize
from .sampling import sample, sample_pair
from .trajectory import trajectory_gain
from . import images, io  # noqa: F401  (dadq.images.save_grid, dadq.io.write_json)

__version__ = "0.1.0"


# the parameter keeps DESIGN.md's public name `images` (callers may pass it by keyword); inside fid it
# shadows the dadq.images module, which fid does not use
def fid(images, reference="default", **kwargs) -> float:  # noqa: F811
    """FID of images [N, C, H, W] in [-1, 1]; see dadq.metrics.fid (MNIST-classifier features by default)."""
    from .metrics import fid as _fid

    return _fid(images, reference=reference, **kwargs)


def paired_psnr_ssim(a, b):
    from .metrics import paired_psnr_ssim as _p

    return _p(a, b)


__all__ = [
    "Allocation", "DiffusionModel", "Profile", "QuantizedUNet", "TimestepGroups", "additivity", "allocate",
    "distortion", "fid", "lagrangian_choice", "load_model", "measure_distortion", "paired_psnr_ssim", "profile",
    "quantize", "rd_sweep", "sample", "sample_pair", "solve", "trajectory_gain",
]
