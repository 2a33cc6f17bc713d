"""Training batches as a pure function of (seed, iteration, rank).

Every random choice of a batch (which images, their same-identity partners,
the cross-identity pairing, flips and crops) comes from a generator seeded by
the iteration, so a resumed run draws exactly the batches the uninterrupted
run would have drawn, without saving any sampler state.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import Tensor

from dgnet.data import transforms as T
from dgnet.data.dataset import cross_identity_partners
from dgnet.train.dgnet_step import Batch

_MIX = 1_000_003  # spreads (seed, iteration, rank) over distinct generator seeds


def iteration_generator(seed: int, iteration: int, rank: int = 0, stream: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(((seed * _MIX + iteration) * 64 + rank) * 8 + stream)


class BatchSampler:
    """Epoch-wise shuffled indices over a labelled image set, sharded over ranks."""

    def __init__(self, labels: Tensor, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.labels = labels
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.n = len(labels)
        self._labels = labels.tolist()
        by_label: dict[int, list[int]] = defaultdict(list)
        for i, label in enumerate(self._labels):
            by_label[label].append(i)
        self.by_label = dict(by_label)
        self._perm_epoch = -1
        self._perm = torch.empty(0, dtype=torch.long)

    def iterations_per_epoch(self) -> int:
        return -(-self.n // (self.batch_size * self.world_size))

    def _permutation(self, epoch: int) -> Tensor:
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(self.seed * _MIX + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        return self._perm

    def indices(self, iteration: int) -> Tensor:
        """The image indices of this rank's batch at ``iteration`` (B,)."""
        start = (iteration * self.world_size + self.rank) * self.batch_size
        out = []
        for q in range(start, start + self.batch_size):
            out.append(self._permutation(q // self.n)[q % self.n])
        return torch.stack(out)

    def positives(self, idx: Tensor, generator: torch.Generator) -> Tensor:
        """For each index another image of the same identity (itself if it is the only one)."""
        out = []
        for i in idx.tolist():
            others = [j for j in self.by_label[self._labels[i]] if j != i]
            if not others:
                out.append(i)
            else:
                out.append(others[torch.randint(len(others), (1,), generator=generator).tolist()[0]])
        return torch.tensor(out)


def augment(images: Tensor, pad: int, generator: torch.Generator, pad_mode: str = "zero") -> Tensor:
    """uint8 (B, 3, H, W) -> normalised float: random flip, pad-and-crop, ImageNet normalisation."""
    images = T.random_flip(images, generator)
    images = T.pad_and_crop(images, pad, generator, pad_mode)
    return T.normalize(images)


def dgnet_batch(
    images: Tensor, sampler: BatchSampler, iteration: int, pad: int, device: torch.device, pad_mode: str = "zero"
) -> Batch:
    """The joint-training batch: x_i, a same-identity x_t, labels and the cross-id partner j.

    ``images`` may live on the host or on ``device`` (:func:`dgnet.data.loading.on_device`); the
    choices are drawn on the host and sent with asynchronous copies, nothing is read back."""
    g = iteration_generator(sampler.seed, iteration, sampler.rank, stream=1)
    idx = sampler.indices(iteration)
    pos = sampler.positives(idx, g)
    labels = sampler.labels[idx]

    def pick(rows: Tensor) -> Tensor:
        return images[T.to_device(rows, images.device)].to(device, non_blocking=True)

    return Batch(
        images=augment(pick(idx), pad, g, pad_mode),
        positives=augment(pick(pos), pad, g, pad_mode),
        labels=T.to_device(labels, device),
        partner=T.to_device(cross_identity_partners(labels, g), device),
    )
