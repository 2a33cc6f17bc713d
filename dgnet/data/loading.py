"""The training and test sets of a config, loaded once into memory."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dgnet.config import DataConfig
from dgnet.data.dataset import ImageCache, ReidTestDataset
from dgnet.data.layouts import ReidSplits, Sample, load_layout, relabel
from dgnet.data.splits import split_validation


@dataclass
class TrainingSet:
    images: Tensor  # uint8 (N, 3, H, W) at the network input size
    labels: Tensor  # (N,) in [0, num_classes)
    num_classes: int
    samples: tuple[Sample, ...]  # relabelled


def load_training_set(cfg: DataConfig, hold_out_validation: bool = False, progress: bool = True,
                      resize: str = "bilinear") -> TrainingSet:
    """Decode the training split once (``resize``: see :attr:`dgnet.config.Config.switches`);
    with ``hold_out_validation`` drop the validation ids."""
    splits = load_layout(cfg.layout, cfg.root, cfg.cuhk03_subset)
    train = splits.train
    if hold_out_validation:
        train, _, _ = split_validation(train, cfg.val_ids, seed=0)
    samples, mapping = relabel(train)
    cache = ImageCache([s.path for s in samples], cfg.height, cfg.width, progress=progress, resize=resize)
    labels = torch.tensor([s.pid for s in samples], dtype=torch.long)
    return TrainingSet(cache.images, labels, len(mapping), samples)


def on_device(images: Tensor, device: torch.device, share: float = 0.25) -> Tensor:
    """The uint8 training images moved to a CUDA ``device`` when they take at most ``share`` of its free
    memory (Market-1501 at 256x128 is about 1.3 GB), so batches are gathered and augmented there; else
    (or on the CPU) the images as they are."""
    if device.type != "cuda" or images.device == device:
        return images
    free, _ = torch.cuda.mem_get_info(device)
    if images.numel() * images.element_size() > share * free:
        return images
    return images.to(device)


def test_sets(cfg: DataConfig, validation: bool = False, resize: str = "bilinear",
              progress: bool = True) -> tuple[ReidTestDataset, ReidTestDataset, ReidSplits]:
    """(query, gallery) datasets: the test split, or the held-out validation ids."""
    splits = load_layout(cfg.layout, cfg.root, cfg.cuhk03_subset)
    if validation:
        _, query, gallery = split_validation(splits.train, cfg.val_ids, seed=0)
    else:
        query, gallery = splits.query, splits.gallery
    return (ReidTestDataset(query, cfg.height, cfg.width, progress=progress, resize=resize),
            ReidTestDataset(gallery, cfg.height, cfg.width, progress=progress, resize=resize), splits)
