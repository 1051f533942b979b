import numpy as np
import pytest
import torch

from dadq import TimestepGroups


@pytest.mark.parametrize("T,G", [(1000, 3), (1000, 10), (1000, 7), (50, 50), (1000, 1)])
def test_groups_cover_every_timestep_once(T, G):
    g = TimestepGroups(T, G)
    seen = np.concatenate([g.timesteps(i) for i in range(G)])
    assert np.array_equal(np.sort(seen), np.arange(T))
    assert g.sizes.max() - g.sizes.min() <= 1
    assert g.sizes.sum() == T
    for i in range(G):
        assert np.all(g.group_of(g.timesteps(i)) == i)
        assert torch.equal(g.group_of(torch.from_numpy(g.timesteps(i))), torch.full((g.sizes[i],), i))


def test_bad_groups():
    with pytest.raises(ValueError, match="must lie in 1..1000"):
        TimestepGroups(1000, 0)
    with pytest.raises(ValueError, match="out of range"):
        TimestepGroups(1000, 10).group_of(1000)
