"""Referring-expression grounding metrics: IoU, Acc@0.5 IoU, mean IoU.

Boxes are continuous (``area = (x2 - x1) * (y2 - y1)``, as :class:`microvlm.data.Box`),
the convention of torchvision's ``box_iou`` and of recent VLM evaluations, not the ``+1``
pixel convention of the original refer toolkit. A prediction that could not be parsed
counts as a miss with IoU 0 and is also reported on its own (``unparseable``).
"""

from __future__ import annotations

from collections.abc import Sequence

from microvlm.data import Box


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes; 0 when the union is empty."""
    iw = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    ih = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = iw * ih
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def grounding_scores(
    predictions: Sequence[Box | None],
    targets: Sequence[Box],
    *,
    threshold: float = 0.5,
) -> dict[str, float]:
    """``acc@<threshold>`` (IoU >= threshold), ``miou`` (unparseable as 0), ``miou_parsed``,
    ``unparseable`` (count), ``unparseable_rate`` and ``count``; rates in [0, 1].

    :param predictions: parsed predicted boxes in pixels, ``None`` where nothing parsed.
    :param targets: the ground-truth boxes in pixels.
    """
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} boxes")
    n = len(targets)
    ious = [box_iou(p, t) if p is not None else 0.0 for p, t in zip(predictions, targets, strict=True)]
    parsed = [iou for iou, p in zip(ious, predictions, strict=True) if p is not None]
    missing = n - len(parsed)
    return {
        f"acc@{threshold:g}": sum(iou >= threshold for iou in ious) / n if n else 0.0,
        "miou": sum(ious) / n if n else 0.0,
        "miou_parsed": sum(parsed) / len(parsed) if parsed else 0.0,
        "unparseable": float(missing),
        "unparseable_rate": missing / n if n else 0.0,
        "count": float(n),
    }
