"""Percentiles and a paired bootstrap, vectorised for 10,000-item comparisons.

Percentiles are nearest-rank (numpy's ``inverted_cdf``: the smallest value with at least
p % of the values at or below it), as ``parley bench`` reports them.

The bootstrap resamples the dataset's items with replacement (``resamples`` times) and
recomputes every statistic on each resample; the 95 % interval is the 2.5th and 97.5th
percentile of the resampled values (the percentile method, as ``scipy.stats.bootstrap``
with ``method="percentile"``). Each statistic is a difference of two ratios of sums,
``sum(num_b) / sum(den_b) - sum(num_a) / sum(den_a)``: a difference of means (num = the
values, den = 1 where a value exists) or of corpus error rates (num = errors, den =
reference length). Items without a value put 0 in both sums, so one set of resamples
serves every statistic: each resample is a count per item, and all statistics come from
one matrix product per chunk of resamples. Intervals of the same numbers are kept in a
small in-process cache (finished runs do not change: a page shown again costs nothing).

Shares of preferences (how often annotators preferred one run's answer) get Wilson's
score interval (:func:`wilson_interval`), which stays inside [0, 1] and behaves at 0 or
n successes and at small n, where the normal approximation does not.
"""

from __future__ import annotations

import collections
import hashlib
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
_CHUNK = 100  # resamples per matrix product (memory: _CHUNK x items counts)
_CACHED = 32  # comparisons whose intervals are kept (a page reloaded, another tag)
_cache: collections.OrderedDict[bytes, list[tuple[float, float]]] = collections.OrderedDict()


def percentiles(values: npt.ArrayLike) -> dict[str, float | int]:
    """``{"n", "p50", "p90", "p99", "mean"}`` of the values that are not NaN (``{"n": 0}``
    when there are none)."""
    data = np.asarray(values, dtype=np.float64)
    data = data[~np.isnan(data)]
    if not data.size:
        return {"n": 0}
    p50, p90, p99 = np.percentile(data, [50, 90, 99], method="inverted_cdf")
    return {
        "n": int(data.size),
        "p50": round(float(p50), 3),
        "p90": round(float(p90), 3),
        "p99": round(float(p99), 3),
        "mean": round(float(data.mean()), 3),
    }


def ratio_differences_ci(
    columns: Sequence[tuple[FloatArray, FloatArray, FloatArray, FloatArray]],
    *,
    resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> list[tuple[float, float]]:
    """95 % percentile-bootstrap intervals of ``sum(nb)/sum(db) - sum(na)/sum(da)`` for
    each ``(na, da, nb, db)`` (arrays over the same items, 0 where an item has no
    value). Deterministic for a given ``seed``; the same numbers again are answered from
    a small cache (:func:`forget`). ``(nan, nan)`` when there is nothing to resample."""
    if not columns:
        return []
    n = len(columns[0][0])
    if n == 0 or resamples <= 0:
        return [(math.nan, math.nan)] * len(columns)
    # Sums are float32 (exact for counts, 1e-7 relative for latencies): half the work.
    distinct: dict[bytes, int] = {}
    arrays: list[np.ndarray] = []
    where = []
    for group in columns:
        for column in group:
            data = np.ascontiguousarray(column, dtype=np.float32)
            raw = data.tobytes()
            if raw not in distinct:
                distinct[raw] = len(arrays)
                arrays.append(data)
            where.append(distinct[raw])
    matrix = np.column_stack(arrays)
    hashed = hashlib.blake2b(matrix.tobytes(), digest_size=16)
    hashed.update(f"{resamples} {seed} {level} {where}".encode())
    digest = hashed.digest()
    if digest in _cache:
        _cache.move_to_end(digest)
        return _cache[digest]
    rng = np.random.default_rng(seed)
    sums = np.empty((resamples, matrix.shape[1]), dtype=np.float64)
    for start in range(0, resamples, _CHUNK):
        size = min(_CHUNK, resamples - start)
        picks = rng.integers(0, n, size=(size, n)) + (np.arange(size)[:, None] * n)
        counts = np.bincount(picks.ravel(), minlength=size * n).reshape(size, n)
        sums[start : start + size] = counts.astype(np.float32) @ matrix
    total = sums[:, where].reshape(resamples, len(columns), 4)
    with np.errstate(divide="ignore", invalid="ignore"):
        stats = total[:, :, 2] / total[:, :, 3] - total[:, :, 0] / total[:, :, 1]
    tail = (1.0 - level) / 2 * 100
    out = []
    for j in range(len(columns)):
        finite = stats[:, j][np.isfinite(stats[:, j])]
        if not finite.size:
            out.append((math.nan, math.nan))
            continue
        low, high = np.percentile(finite, [tail, 100 - tail])
        out.append((float(low), float(high)))
    _cache[digest] = out
    while len(_cache) > _CACHED:
        _cache.popitem(last=False)
    return out


# The 97.5th percentile of the standard normal distribution (a two-sided 95 % interval).
Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson's score interval for a binomial proportion ``successes / n`` (95 % with the
    default ``z``), as (low, high) in [0, 1]; None when ``n`` is 0. Formula: E. B.
    Wilson, "Probable inference, the law of succession, and statistical inference",
    JASA 22 (1927); R. G. Newcombe, Statistics in Medicine 17 (1998), method 3:
    ``(p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)``."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be 0 to n ({successes} of {n})")
    p = successes / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    scale = 1 + z2 / n
    return max(0.0, (centre - spread) / scale), min(1.0, (centre + spread) / scale)


def forget() -> None:
    """Empty the cache of intervals (benchmarks time the computation itself)."""
    _cache.clear()
