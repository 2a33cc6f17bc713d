"""Hold out training identities as a validation query/gallery set (for tuning).

    train_part, val_query, val_gallery = split_validation(splits.train, val_ids=10, seed=0)

Tuning (Optuna) scores on this split, never on the test set. For each held-out
identity, one image per camera becomes a query, as long as every query keeps
a gallery image of the same identity from another camera; the rest go to the
gallery (an identity seen by a single camera goes to the gallery only).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from dgnet.data.layouts import Sample
from dgnet.errors import UserError


def _queries_valid(queries: list[Sample], gallery: list[Sample]) -> bool:
    cams = {s.camid for s in gallery}
    return all(cams - {q.camid} for q in queries)


def split_validation(
    train: Sequence[Sample], val_ids: int, seed: int
) -> tuple[tuple[Sample, ...], tuple[Sample, ...], tuple[Sample, ...]]:
    """Deterministically hold out ``val_ids`` identities of ``train``.

    Returns ``(train_part, val_query, val_gallery)``; the three are disjoint,
    keep the original pids (relabel ``train_part`` afterwards) and the input
    order within each part. At least two identities must stay for training.
    """
    train = tuple(train)
    if val_ids == 0:
        return train, (), ()
    pids = sorted({s.pid for s in train})
    if val_ids > len(pids) - 2:
        raise UserError(
            f"data.val_ids = {val_ids}: too many; the training set has {len(pids)} ids "
            f"and at least 2 must stay for training"
        )
    rng = np.random.default_rng([seed, 0x5A1])
    held = {int(p) for p in rng.choice(pids, size=val_ids, replace=False)}
    query: set[int] = set()  # indices into train
    for pid in sorted(held):
        idx = [i for i, s in enumerate(train) if s.pid == pid]
        cams = sorted({train[i].camid for i in idx})
        if len(cams) < 2:
            continue
        for cam in (cams[k] for k in rng.permutation(len(cams))):
            in_cam = [i for i in idx if train[i].camid == cam]
            pick = in_cam[int(rng.integers(len(in_cam)))]
            trial = query | {pick}
            q = [train[i] for i in idx if i in trial]
            g = [train[i] for i in idx if i not in trial]
            if _queries_valid(q, g):
                query = trial
    train_part = tuple(s for s in train if s.pid not in held)
    val_query = tuple(s for i, s in enumerate(train) if i in query)
    val_gallery = tuple(s for i, s in enumerate(train) if s.pid in held and i not in query)
    return train_part, val_query, val_gallery


__all__ = ["split_validation"]
