"""Shared fixtures: small real UNet2DModels built from a config (random weights, seeded)."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

TINY = dict(
    sample_size=16, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
    down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=4, attention_head_dim=8,
)


@pytest.fixture(scope="session")
def tiny_model():
    import dadq

    return dadq.load_model(dict(TINY), seed=0)


@pytest.fixture(scope="session")
def tiny_profile(tiny_model):
    import dadq

    return dadq.profile(tiny_model, groups=3, bits=[2, 4, 8], calib_per_group=4, seed=0)
