"""What a training needs of a tracking run: somewhere to log metrics by step.

The training loops (``dgnet.train``) take a :class:`RunLog` argument and call
only ``log_metrics``; they never import the tracking layer. The stage-level
runs (``dgnet.stages``) pass in a :class:`dgnet.tracking.Run`, which satisfies
the protocol; code that logs nothing passes :data:`NO_LOG`::

    train_teacher(cfg, images, labels, num_classes, "teacher.pt", NO_LOG)
"""

from __future__ import annotations

from typing import Protocol


class RunLog(Protocol):
    """The one method the training loops call on a run."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None: ...


class NoLog:
    """A :class:`RunLog` that keeps nothing."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        return None


NO_LOG = NoLog()

__all__ = ["NO_LOG", "NoLog", "RunLog"]
