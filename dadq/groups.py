"""Timestep groups: split the T diffusion timesteps into G contiguous groups.

Group 0 holds the smallest timesteps (least noise). When G does not divide T, the first
``T % G`` groups hold one timestep more, so sizes differ by at most one.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class TimestepGroups:
    num_timesteps: int = 1000
    num_groups: int = 10

    def __post_init__(self):
        if not 1 <= self.num_groups <= self.num_timesteps:
            raise ValueError(
                f"num_groups={self.num_groups} must lie in 1..{self.num_timesteps} (the number of timesteps)."
            )

    @property
    def sizes(self) -> np.ndarray:
        """Timesteps per group, int [G]."""
        q, r = divmod(self.num_timesteps, self.num_groups)
        return np.array([q + (1 if g < r else 0) for g in range(self.num_groups)], dtype=np.int64)

    @property
    def bounds(self) -> np.ndarray:
        """Group edges, int [G + 1]: group g holds timesteps bounds[g] <= t < bounds[g + 1]."""
        return np.concatenate([[0], np.cumsum(self.sizes)])

    def group_of(self, t):
        """Group index of timestep(s) t: int for an int, an int array/tensor for an array/tensor."""
        edges = self.bounds[1:-1]
        if isinstance(t, torch.Tensor):
            return torch.bucketize(t.long().cpu(), torch.from_numpy(edges), right=True)
        arr = np.asarray(t)
        if np.any(arr < 0) or np.any(arr >= self.num_timesteps):
            raise ValueError(f"timestep out of range 0..{self.num_timesteps - 1}: {t}")
        out = np.searchsorted(edges, arr, side="right")
        return int(out) if out.ndim == 0 else out

    def timesteps(self, g: int) -> np.ndarray:
        """The timesteps of group g, int [size_g]."""
        b = self.bounds
        return np.arange(b[g], b[g + 1])

    def labels(self) -> list[str]:
        """Readable names, e.g. 't 0-99'."""
        b = self.bounds
        return [f"t {b[g]}-{b[g + 1] - 1}" for g in range(self.num_groups)]
