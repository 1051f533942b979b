"""experiments.group_halves quantizes only the named timestep groups: elsewhere the model is the FP one."""
import torch

from experiments.group_halves import quantize_only


def test_quantize_only_leaves_the_other_groups_at_full_precision(tiny_model, tiny_profile):
    import dadq

    prof = tiny_profile
    alloc = dadq.allocate(prof, budget=2, target="wa", method="uniform")
    q = quantize_only(dadq, tiny_model, prof, alloc, [0])
    x = torch.randn(1, *prof.calib_x.shape[2:])
    with torch.no_grad():
        fp = {t: tiny_model.unet(x, torch.tensor([t])).sample for t in (5, 995)}
        qt = {t: q.unet(x, torch.tensor([t])).sample for t in (5, 995)}
    assert int(prof.groups.group_of(torch.tensor([995]))[0]) != 0
    torch.testing.assert_close(qt[995], fp[995])  # a group not named: FP weights and activations
    assert not torch.allclose(qt[5], fp[5], atol=1e-4)  # group 0 runs at 2 bits


def test_fp_layers_stay_at_full_precision_in_every_group(tiny_model, tiny_profile):
    """experiments.activation_cost's timestep-embedding row: the named layers are FP, the others quantized."""
    import dadq
    from dadq.bitwidths import FP_BITS
    from experiments.activation_cost import time_layers

    prof = tiny_profile
    fp_time = time_layers(prof.layer_names)
    assert fp_time and all("time_emb" in n for n in fp_time)
    alloc = dadq.allocate(prof, budget=2, target="wa", method="uniform")
    q = quantize_only(dadq, tiny_model, prof, alloc, list(range(prof.num_groups)), fp_time)
    for name, ql in q.unet.layers.items():
        expect_fp = name in fp_time
        assert all((b == FP_BITS) == expect_fp for b in ql.w_bits + ql.a_bits), name
