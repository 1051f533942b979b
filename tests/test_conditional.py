"""Conditional models: a class-conditional UNet2DModel, a DiTTransformer2DModel and a UNet2DConditionModel,
each a tiny random config, go through profile -> allocate -> quantize -> sample_pair -> FID; classifier-free
guidance; and the errors for bad conditioning."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import dadq
from dadq.models import DiffusionModel, quantizable_layers

torch.set_num_threads(1)

DIT = dict(_class_name="DiTTransformer2DModel", sample_size=28, in_channels=1, out_channels=1, patch_size=4,
           num_attention_heads=2, attention_head_dim=8, num_layers=1, num_embeds_ada_norm=10)
UNET_CLASS = dict(sample_size=28, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
                  down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                  norm_num_groups=4, num_class_embeds=11)  # classes 0-9 and null class 10
UNET_COND = dict(_class_name="UNet2DConditionModel", sample_size=28, in_channels=1, out_channels=1,
                 layers_per_block=1, block_out_channels=(8, 16), norm_num_groups=4, cross_attention_dim=16,
                 attention_head_dim=4, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
EHS = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(1))  # 3 conditions, 5 tokens, dim 16


def _models():
    return {
        "dit": dadq.load_model(DIT, guidance_scale=2.0),
        "unet-class": dadq.load_model(UNET_CLASS, null_class=10, guidance_scale=2.0),
        "unet-cond": dadq.load_model(UNET_COND, encoder_hidden_states=EHS, null_encoder_hidden_states=torch.zeros(5, 16),
                                     guidance_scale=2.0),
    }


@pytest.fixture(scope="module")
def models():
    return _models()


def _layer_subset(model):
    names = [n for n, _ in quantizable_layers(model.unet)]
    return [names[0], names[len(names) // 2], names[-1]]  # first, a middle one, last


@pytest.mark.parametrize("name", ["dit", "unet-class", "unet-cond"])
def test_pipeline_profile_allocate_quantize_sample_fid(models, name):
    model = models[name]
    labels = [3, 7, 1, 0] if model.conditioning == "class" else None
    ehs = EHS[[0, 1, 2, 0]] if model.conditioning == "text" else None
    prof = dadq.profile(model, groups=2, bits=[2, 4, 8], calib_per_group=2, calib_steps=4,
                        layers=_layer_subset(model))
    cal = prof.meta["calibration"]
    assert cal["guidance_scale"] == 2.0 and cal["branches"] == ["conditional", "null"]
    assert prof.meta["model_kind"] == model.kind
    if model.conditioning == "class":
        assert len(cal["classes"]) == 2 and len(set(cal["classes"])) == 2
        assert all(0 <= c < 10 for c in cal["classes"])
    assert np.isfinite(prof.d_w).all() and np.isfinite(prof.d_a).all()
    assert (prof.d_w[:, :, 0] >= prof.d_w[:, :, -1]).all()  # 2 bits distort more than 8
    alloc = dadq.allocate(prof, budget=4.0)
    qmodel = dadq.quantize(model, prof, alloc)
    assert qmodel.kind == model.kind and qmodel.null_class == model.null_class
    # additivity re-measures on the calibration inputs with the profile's labels and guidance
    assert np.isfinite(dadq.additivity(model, prof, alloc)["measured"]).all()
    fp, q = dadq.sample_pair(model, qmodel, n=4, steps=3, seed=0, class_labels=labels, guidance_scale=3.0,
                             encoder_hidden_states=ehs, parallel=False)
    assert fp.shape == q.shape == (4, 1, 28, 28)
    assert torch.isfinite(fp).all() and torch.isfinite(q).all()
    assert not torch.equal(fp, q)
    # the FP chain is a plain sample with the same labels, guidance and noise
    again = dadq.sample(model, n=4, steps=3, seed=0, class_labels=labels, guidance_scale=3.0,
                        encoder_hidden_states=ehs, progress=False)
    assert torch.allclose(fp, again, atol=1e-5)
    assert np.isfinite(dadq.fid(torch.cat([fp, q])))


def test_dit_layers_are_all_quantizers(models):
    dit = models["dit"]
    names = [n for n, _ in quantizable_layers(dit.unet)]
    linears = [n for n, m in dit.unet.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    assert names == linears
    for part in ("pos_embed.proj", "attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "ff.net.0.proj",
                 "ff.net.2", "norm1.linear", "timestep_embedder.linear_1", "proj_out_1", "proj_out_2"):
        assert any(part in n for n in names), part


def test_guidance_is_cfg_in_one_batch(models):
    dit = models["dit"]
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([10, 500, 990])
    y = torch.tensor([1, 5, 9])
    cond = dit.eps(x, t, class_labels=y, guidance_scale=1.0)
    uncond = dit.eps(x, t)  # no labels: the null class
    assert torch.allclose(uncond, dit.eps(x, t, class_labels=[10, 10, 10]))
    guided = dit.eps(x, t, class_labels=y, guidance_scale=4.0)
    assert torch.allclose(guided, uncond + 4.0 * (cond - uncond), atol=1e-5)
    assert dit.null_class == 10 and dit.num_classes == 10


def test_local_folder_roundtrip(models, tmp_path):
    dit = models["dit"]
    dit.unet.save_pretrained(tmp_path / "transformer")
    dit.scheduler.save_pretrained(tmp_path / "scheduler")
    (tmp_path / "dadq.json").write_text('{"guidance_scale": 2.5}')
    back = dadq.load_model(tmp_path)
    assert back.kind == "dit" and back.null_class == 10 and back.guidance_scale == 2.5
    assert back.fingerprint() == dit.fingerprint()
    unet = models["unet-class"]
    unet.unet.save_pretrained(tmp_path / "u" / "unet")
    u = dadq.load_model(tmp_path / "u", null_class=10)
    assert u.kind == "unet" and u.num_classes == 10 and u.can_guide


def test_bad_conditioning_errors(models):
    dit, unet, cond = models["dit"], models["unet-class"], models["unet-cond"]
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([5, 5])
    with pytest.raises(ValueError, match="out of range.*0..9"):
        dadq.sample(dit, n=2, steps=2, class_labels=[3, 12], progress=False)
    with pytest.raises(ValueError, match="out of range"):
        dit.eps(x, t, class_labels=[-1, 0])
    no_null = dadq.load_model(dict(UNET_CLASS, num_class_embeds=10))
    with pytest.raises(ValueError, match="guidance needs a null class"):
        dadq.sample(no_null, n=2, steps=2, guidance_scale=3.0, progress=False)
    with pytest.raises(ValueError, match="guidance needs a null class"):
        dadq.sample_pair(no_null, no_null, n=2, steps=2, guidance_scale=3.0)
    with pytest.raises(ValueError, match="needs class_labels"):
        no_null.eps(x, t)
    with pytest.raises(ValueError, match="not class-conditional"):
        dadq.sample(cond, n=2, steps=2, class_labels=[1, 2], progress=False)
    with pytest.raises(ValueError, match=r"expected \[batch, sequence, 16\]"):
        cond.eps(x, t, encoder_hidden_states=torch.randn(2, 5, 12))
    with pytest.raises(ValueError, match="conditions for 3 samples"):
        dadq.sample(cond, n=3, steps=2, encoder_hidden_states=torch.randn(2, 5, 16), progress=False)
    with pytest.raises(ValueError, match="only a UNet2DConditionModel"):
        dit.eps(x, t, class_labels=[1, 2], encoder_hidden_states=torch.randn(2, 5, 16))
    with pytest.raises(ValueError, match="2 class labels for 3 samples"):
        dadq.sample(unet, n=3, steps=2, class_labels=[1, 2], progress=False)
    no_null_cond = dadq.load_model(UNET_COND, encoder_hidden_states=EHS)
    with pytest.raises(ValueError, match="null_encoder_hidden_states"):
        no_null_cond.eps(x, t, guidance_scale=2.0)


def test_unsupported_kind_names_the_supported_ones():
    with pytest.raises(ValueError, match="DiTTransformer2DModel.*UNet2DConditionModel"):
        dadq.load_model(dict(_class_name="UNet1DModel", sample_size=16))
    with pytest.raises(ValueError, match="does not support Linear models; supported kinds: UNet2DModel"):
        DiffusionModel(nn.Linear(2, 2), None)


def test_cli_class_labels():
    from dadq.cli import _class_labels, build_parser

    dit = dadq.load_model(DIT)
    assert _class_labels("0-9", 12, dit, 0).tolist() == list(range(10)) + [0, 1]
    assert _class_labels("3,3,7", 4, dit, 0).tolist() == [3, 3, 7, 3]
    assert _class_labels("7", 2, dit, 0).tolist() == [7, 7]
    r = _class_labels("random", 50, dit, 0)
    assert r.min() >= 0 and r.max() <= 9 and len(set(r.tolist())) > 5
    with pytest.raises(ValueError, match="--class-labels"):
        _class_labels("a-b", 2, dit, 0)
    args = build_parser().parse_args(["sample", "--model", "dit", "--budget", "4", "--class-labels", "0-9",
                                      "--guidance", "3"])
    assert args.class_labels == "0-9" and args.guidance == 3.0


def test_shipped_dit():
    from dadq.models import NAMED_MODELS

    folder = NAMED_MODELS["dit"]
    weights = folder / "transformer" / "diffusion_pytorch_model.safetensors"
    if not weights.exists():
        pytest.skip("assets/dit is not built")
    import hashlib

    assert weights.stat().st_size <= 15e6
    dit = dadq.load_model("dit")
    assert dit.kind == "dit" and dit.num_classes == 10 and dit.null_class == 10 and dit.can_guide
    assert dit.guidance_scale is not None and dit.guidance_scale > 1
    card = (folder / "README.md").read_text() if (folder / "README.md").exists() else ""
    if card:
        assert hashlib.sha256(weights.read_bytes()).hexdigest() in card
    x = dadq.sample(dit, n=2, steps=2, class_labels=[3, 7], progress=False)
    assert x.shape == (2, 1, 28, 28) and torch.isfinite(x).all()
