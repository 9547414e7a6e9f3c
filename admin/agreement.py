"""Inter-annotator agreement: Krippendorff's alpha for ordinal and nominal data.

Follows Krippendorff, "Computing Krippendorff's Alpha-Reliability" (2011): values are
paired within each unit (here a turn) into a coincidence matrix ``o``; the ordinal
distance between values c and k is ``(sum of n_g for g from c to k - (n_c + n_k)/2)^2``
with ``n_g`` the marginal totals of ``o``, the nominal distance 1 for any two different
labels; alpha = 1 - D_observed / D_expected. Units with fewer than two values are not
pairable and do not count. Missing values are None or NaN.

Why not the ``krippendorff`` package (which takes the same per-unit value counts): it is
licensed GPL-3.0-or-later and Parley MIT, so the admin cannot depend on it; the tests use
it (a dev-only dependency, never shipped) as the independent check of these functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def coincidences(units: np.ndarray, categories: int) -> np.ndarray:
    """``units[u, c]``: how many coders gave unit u the value c (pairable units only)."""
    counts = units[units.sum(axis=1) >= 2].astype(float)
    if counts.size == 0:
        return np.zeros((categories, categories))
    weights = 1.0 / (counts.sum(axis=1) - 1.0)
    matrix = (counts * weights[:, None]).T @ counts
    matrix -= np.diag((counts * weights[:, None]).sum(axis=0))
    return matrix


def _ordinal_delta(n_c: np.ndarray) -> np.ndarray:
    cumulative = np.concatenate([[0.0], np.cumsum(n_c)])
    idx = np.arange(len(n_c))
    low, high = np.minimum.outer(idx, idx), np.maximum.outer(idx, idx)
    between = cumulative[high + 1] - cumulative[low]  # sum of n_g, g from c to k
    delta = (between - (n_c[:, None] + n_c[None, :]) / 2.0) ** 2
    np.fill_diagonal(delta, 0.0)
    return delta


def alpha_from_coincidences(o: np.ndarray, level: str = "ordinal") -> float:
    """Alpha from a coincidence matrix (NaN if undefined); ``level``: "ordinal" (the
    categories are in order) or "nominal" (labels)."""
    if level not in ("ordinal", "nominal"):
        raise ValueError(f"level must be ordinal or nominal, not {level!r}")
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if n <= 1:
        return math.nan
    delta = _ordinal_delta(n_c) if level == "ordinal" else 1.0 - np.eye(len(n_c))
    observed = (o * delta).sum()
    expected = (np.outer(n_c, n_c) * delta).sum()
    if expected == 0:
        return math.nan  # every value the same: agreement is undefined
    return float(1.0 - (n - 1.0) * observed / expected)


def ordinal_alpha_from_coincidences(o: np.ndarray) -> float:
    return alpha_from_coincidences(o, "ordinal")


def ordinal_alpha_from_counts(units: np.ndarray) -> float:
    """Alpha from a (units x categories) value-count matrix; categories are ordered."""
    return ordinal_alpha_from_coincidences(coincidences(units, units.shape[1]))


def ordinal_alpha(
    reliability: Sequence[Sequence[float | None]], values: Sequence[float] | None = None
) -> float:
    """Alpha from a coders x units table (None/NaN: that coder did not rate that unit).

    ``values`` is the ordered value domain (default: the distinct values present).
    """
    data = np.array(
        [[math.nan if v is None else float(v) for v in row] for row in reliability], dtype=float
    )
    domain = np.array(sorted(set(data[~np.isnan(data)].tolist())) if values is None else values)
    units = np.stack([(data == value).sum(axis=0) for value in domain], axis=1)
    return ordinal_alpha_from_counts(units)


def alpha_from_pairs(unit_ids: np.ndarray, scores: np.ndarray, categories: int) -> float:
    """Alpha from parallel arrays: one (unit id, integer score) per rating, NaN skipped."""
    keep = ~np.isnan(scores)
    unit_ids, scores = unit_ids[keep], scores[keep].astype(int)
    if scores.size == 0:
        return math.nan
    _, unit_index = np.unique(unit_ids, return_inverse=True)
    units = np.zeros((int(unit_index.max()) + 1, categories))
    np.add.at(units, (unit_index, scores), 1.0)
    return ordinal_alpha_from_counts(units)
