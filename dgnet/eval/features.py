"""Test features: extraction with flip, DG-Net's combined feature, multi-query.

    feats, pids, camids = extract_features(embed, ReidTestDataset(samples, 256, 128), 64, "cuda")
    f = combine_features(feats["f_prim"], feats["f_fine"], beta=0.5)

As the reference test script (NVlabs/DG-Net ``reid_eval/test_2label.py``)
does: every named feature of an image and of its horizontal flip is
L2-normalised, the two are summed and the sum is L2-normalised again, each
named feature on its own (f_prim and f_fine separately); the concatenation
``[f_prim, beta * f_fine]`` is *not* re-normalised.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from dgnet.progress import tqdm

Embed = Callable[[Tensor], Mapping[str, Tensor]]


def _normalize(x: Tensor) -> Tensor:
    return F.normalize(x.float(), p=2, dim=1)


def flip_average(plain: Tensor, flipped: Tensor) -> Tensor:
    """``normalize(normalize(plain) + normalize(flipped))`` (B, D): one named test feature
    from the features of images and of their horizontal flips (also what exported models compute)."""
    return _normalize(_normalize(plain) + _normalize(flipped))


def extract_features(
    embed: Embed,
    dataset: Dataset,
    batch_size: int,
    device: str | torch.device,
    desc: str = "features",
    num_workers: int = 0,
    progress: bool = True,
) -> tuple[dict[str, Tensor], np.ndarray, np.ndarray]:
    """Features of every item of ``dataset``, in its order.

    ``dataset[i]`` is a dict with ``image`` (3, H, W), normalised float, and
    integer ``pid`` and ``camid``. ``embed(images)`` maps a batch (B, 3, H, W)
    on ``device`` to named features, each (B, D). For every name:
    ``normalize(normalize(f(x)) + normalize(f(flip(x))))``, flip = horizontal.
    Returns the features on the CPU as float32 (N, D) per name, and the pids
    and camids as int64 arrays. ``embed`` should already be in eval mode (the
    extraction runs under ``torch.no_grad``).
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    parts: dict[str, list[Tensor]] = {}
    pids: list[Tensor] = []
    camids: list[Tensor] = []
    with torch.no_grad():
        for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
            images = batch["image"].to(device)  # (B, 3, H, W)
            plain, flipped = embed(images), embed(torch.flip(images, dims=[3]))
            if set(plain) != set(flipped):
                raise ValueError("embed returned different feature names for flipped images")
            for name, f in plain.items():
                parts.setdefault(name, []).append(flip_average(f, flipped[name]).cpu())
            pids.append(torch.as_tensor(batch["pid"]))
            camids.append(torch.as_tensor(batch["camid"]))
    if not pids:
        raise ValueError(f"{desc}: the data set is empty")
    feats = {name: torch.cat(chunks) for name, chunks in parts.items()}
    return feats, torch.cat(pids).numpy().astype(np.int64), torch.cat(camids).numpy().astype(np.int64)


def combine_features(f_prim: Tensor, f_fine: Tensor, beta: float) -> Tensor:
    """DG-Net's test feature ``[f_prim, beta * f_fine]`` (N, D1 + D2), not re-normalised.

    The inputs are each already L2-normalised (:func:`extract_features`). The
    reference never re-normalises the concatenation (doing so would not change
    a query's ranking but would re-weight the gallery's two halves). Note that the reference scales only the *query*'s
    f_fine by beta, so its similarity is ``s_prim + beta * s_fine``; applying
    this function to both sides gives ``s_prim + beta**2 * s_fine``, hence
    :func:`dgnet_feature` uses ``sqrt(beta)`` here.
    """
    if f_prim.shape[0] != f_fine.shape[0]:
        raise ValueError(f"f_prim has {f_prim.shape[0]} rows but f_fine has {f_fine.shape[0]}")
    return torch.cat([f_prim, beta * f_fine], dim=1)


def dgnet_feature(beta: float) -> Callable[[Mapping[str, Tensor]], Tensor]:
    """The feature set ``f_prim+f_fine`` with the reference's weighting.

    Applied alike to queries and gallery, ``combine_features(f_prim, f_fine,
    sqrt(beta))`` gives inner products ``s_prim + beta * s_fine``, exactly the
    scores of the reference evaluation (which scales the query's f_fine by
    beta and leaves the gallery's alone), and symmetric distances, which
    re-ranking needs.
    """
    scale = float(np.sqrt(beta))

    def combined(feats: Mapping[str, Tensor]) -> Tensor:
        return combine_features(feats["f_prim"], feats["f_fine"], scale)

    combined.beta = beta  # reported with the metrics of the set
    return combined


def multi_query_features(
    q_feat: Tensor, q_pids, q_camids, mq_feat: Tensor, mq_pids, mq_camids
) -> Tensor:
    """Market-1501's multiple query: each query becomes the mean of the ``gt_bbox``
    features with its pid and camera, L2-normalised (N, D).

    A query with no such image keeps its own feature. (The reference averages
    the same images; it does not re-normalise, which changes no ranking but
    matters for re-ranking's query-query distances.)
    """
    qp, qc = torch.as_tensor(np.asarray(q_pids)), torch.as_tensor(np.asarray(q_camids))
    mp, mc = torch.as_tensor(np.asarray(mq_pids)), torch.as_tensor(np.asarray(mq_camids))
    if len(qp) != q_feat.shape[0] or len(mp) != mq_feat.shape[0]:
        raise ValueError("multi_query_features: features and labels differ in length")
    if q_feat.shape[1] != mq_feat.shape[1]:
        raise ValueError(f"query features have {q_feat.shape[1]} dims, multi-query {mq_feat.shape[1]}")
    # one group per (pid, camera); queries look their group up
    keys, inverse = torch.unique(torch.stack([mp, mc], 1), dim=0, return_inverse=True)
    sums = torch.zeros(len(keys), mq_feat.shape[1], dtype=mq_feat.dtype)
    sums.index_add_(0, inverse, mq_feat.cpu())
    key_of = {(int(p), int(c)): i for i, (p, c) in enumerate(keys.tolist())}
    group = torch.tensor([key_of.get((int(p), int(c)), -1) for p, c in zip(qp, qc)], dtype=torch.long)
    out = q_feat.detach().cpu().clone()
    found = group >= 0
    out[found] = F.normalize(sums[group[found]], p=2, dim=1)  # the mean's direction
    return out.to(q_feat.device)


__all__ = ["combine_features", "dgnet_feature", "extract_features", "flip_average", "multi_query_features"]
