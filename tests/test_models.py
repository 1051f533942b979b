"""Model loading: config, local diffusers folder, hub-id code path (offline cache), CIFAR-10 DDPM architecture."""
import json

import numpy as np
import pytest
import torch

import dadq
from dadq.models import CIFAR10_DDPM_CONFIG, quantizable_layers

from .conftest import TINY



def _save_pipeline(model, folder):
    from diffusers import DDPMPipeline

    DDPMPipeline(unet=model.unet, scheduler=model.scheduler).save_pretrained(folder, safe_serialization=True)


def test_local_folder_roundtrip(tiny_model, tmp_path):
    _save_pipeline(tiny_model, tmp_path / "m")
    m = dadq.load_model(str(tmp_path / "m"))
    assert m.fingerprint() == tiny_model.fingerprint()
    assert m.num_timesteps == 1000 and m.sample_shape == (1, 16, 16)


def test_config_json_file(tmp_path):
    (tmp_path / "cfg.json").write_text(json.dumps(TINY))
    a = dadq.load_model(str(tmp_path / "cfg.json"), seed=0)
    b = dadq.load_model(dict(TINY), seed=0)
    c = dadq.load_model(dict(TINY), seed=1)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_hub_id_from_local_cache(tiny_model, tmp_path):
    # the real huggingface_hub code path, fed from a cache folder in the hub's own layout
    commit = "0" * 40
    snap = tmp_path / "cache" / "models--dadq-test--tiny-ddpm" / "snapshots" / commit
    _save_pipeline(tiny_model, snap)
    refs = tmp_path / "cache" / "models--dadq-test--tiny-ddpm" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text(commit)
    m = dadq.load_model("dadq-test/tiny-ddpm", cache_dir=str(tmp_path / "cache"), local_files_only=True)
    assert m.fingerprint() == tiny_model.fingerprint() and m.source == "dadq-test/tiny-ddpm"
    with pytest.raises(ValueError, match="could not fetch hub model"):
        dadq.load_model("dadq-test/absent", cache_dir=str(tmp_path / "cache"), local_files_only=True)


def test_bad_sources():
    with pytest.raises(ValueError, match="no model at"):
        dadq.load_model("/no/such/folder")
    with pytest.raises(ValueError, match="invalid UNet2DModel config"):
        dadq.load_model({"not_a_key": 1})


def test_cifar10_ddpm_architecture_profiles_on_a_subset():
    torch.manual_seed(0)
    model = dadq.load_model(dict(CIFAR10_DDPM_CONFIG), seed=0)
    n_params = sum(p.numel() for p in model.unet.parameters())
    assert abs(n_params - 35.7e6) < 0.1e6
    assert len(quantizable_layers(model.unet)) == 113
    prof = dadq.profile(model, groups=2, bits=[4, 8], calib_per_group=1, calib_steps=4,
                        layers=["conv_in", "conv_out", "re:^mid_block.attentions.0.to_q$"])
    assert prof.layer_names == ["conv_in", "mid_block.attentions.0.to_q", "conv_out"]
    assert np.isfinite(prof.d_w).all() and np.all(prof.d_w[..., 0] > prof.d_w[..., 1])
    alloc = dadq.allocate(prof, budget=6, method="exact")
    q = dadq.quantize(model, prof, alloc)
    x = torch.randn(1, 3, 32, 32)
    assert q.eps(x, torch.tensor([10])).shape == (1, 3, 32, 32)


def test_cpu_models_run_in_channels_last_and_match_the_default_layout(tiny_model):
    """use_fast_layout: conv weights in channels_last on the CPU, quantized weights in the same layout, and the
    outputs of both layouts equal up to float rounding."""
    import copy

    conv = tiny_model.unet.conv_out.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    plain = copy.deepcopy(tiny_model.unet).to(memory_format=torch.contiguous_format)
    assert plain.conv_out.weight.is_contiguous()
    x, t = torch.randn(4, *tiny_model.sample_shape, generator=torch.Generator().manual_seed(0)), torch.tensor([999, 500, 20, 0])
    with torch.no_grad():
        fast, ref = tiny_model.unet(x, t).sample, plain(x, t).sample
    assert torch.allclose(fast, ref, atol=1e-4, rtol=0)

    # conv_in has one input channel: its weight is contiguous in both layouts, and only its strides tell
    # oneDNN to keep the activations after it in channels_last
    prof = dadq.profile(tiny_model, groups=1, bits=[4], calib_per_group=2, mode="fast", layers=["conv_in", "conv_out"])
    q = dadq.quantize(tiny_model, prof, dadq.allocate(prof, budget=4, target="w"))
    seen = []
    hook = q.unet.layers["conv_out"].register_forward_pre_hook(lambda m, inp: seen.append(inp[0]))
    with torch.no_grad():
        q.eps(x, t)
    hook.remove()
    for name in ("conv_in", "conv_out"):
        layer = q.unet.layers[name]
        assert layer.quantized_weight(4).stride() == layer.weight.stride(), name
    assert q.unet.layers["conv_out"].quantized_weight(4).is_contiguous(memory_format=torch.channels_last)
    assert not q.unet.layers["conv_out"].quantized_weight(4).is_contiguous()
    assert seen and all(a.is_contiguous(memory_format=torch.channels_last) and not a.is_contiguous() for a in seen)
