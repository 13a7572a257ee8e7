"""Confidence intervals for eval scores: Wilson for 0/1 outcomes, percentile bootstrap otherwise, and a
paired bootstrap for the difference between two models scored on the same items.

**Wilson score interval** (binary outcomes, ``k`` successes of ``n``), with ``p = k / n``::

    centre = (p + z^2 / (2n)) / (1 + z^2 / n)
    half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / (4 n^2))
    (lo, hi) = (centre - half, centre + half)

It stays inside [0, 1], always contains ``p``, and unlike the normal (Wald) interval it does not
collapse to a point at ``k = 0`` or ``k = n``. Example: ``k=8, n=10, z=1.96`` gives (0.490, 0.943).
``n = 0`` carries no information: (0, 1).

**Percentile bootstrap of the mean** (fractional scores, e.g. the share of unit tests passed): draw
``n_boot`` resamples of the ``n`` values with replacement, take each resample's mean, and report the
``alpha/2`` and ``1 - alpha/2`` quantiles of those means. The resamples come from
``numpy.random.default_rng(seed)``, so the interval is deterministic for a seed.

**Paired bootstrap of a difference** (model A vs model B on the same prompts): with per-item
differences ``d_i = a_i - b_i``, the estimate is ``mean(d)`` and the interval is the percentile bootstrap
of ``mean(d)`` resampling *items* (each draw keeps ``a_i`` and ``b_i`` together). Pairing removes the
between-prompt variance that two independent intervals would double count, so a shared hard prompt set
does not hide a real difference. The interval excluding 0 is the "this is not noise" signal at level
``1 - alpha``.

Every interval is widened, if needed, to contain its point estimate (the bootstrap quantiles of a
skewed sample can in rare cases sit on one side of the mean).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

_CHUNK = 256  # bootstrap resamples drawn at once (bounds memory at _CHUNK x n indices)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials; ``(0.0, 1.0)`` when ``n == 0``."""
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= k <= n:
        raise ValueError(f"wilson: need 0 <= k <= n, got k={k}, n={n}")
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, min(centre - half, p)), min(1.0, max(centre + half, p))


def _boot_means(values: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of ``values``."""
    rng = np.random.default_rng(seed)
    n = len(values)
    out = np.empty(n_boot)
    for start in range(0, n_boot, _CHUNK):
        m = min(_CHUNK, n_boot - start)
        out[start : start + m] = values[rng.integers(0, n, size=(m, n))].mean(axis=1)
    return out


def _percentile(values: np.ndarray, n_boot: int, alpha: float, seed: int) -> tuple[float, float]:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    mean = float(values.mean())
    if np.all(values == values[0]):  # a constant sample: every resample mean is the same value
        return mean, mean
    means = _boot_means(values, n_boot, seed)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return min(float(lo), mean), max(float(hi), mean)


def bootstrap_ci(
    values: Sequence[float], n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap ``1 - alpha`` interval of the mean of ``values`` (``(0.0, 1.0)`` when empty)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return 0.0, 1.0
    return _percentile(arr, n_boot, alpha, seed)


def mean_ci(
    values: Sequence[float], n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float]:
    """Interval for the mean score: Wilson (``z`` the ``1 - alpha/2`` normal quantile, 1.96 at the
    default) when every value is 0 or 1, else the percentile bootstrap."""
    arr = np.asarray(values, dtype=float)
    if arr.size and np.all((arr == 0) | (arr == 1)):
        z = 1.96 if alpha == 0.05 else NormalDist().inv_cdf(1 - alpha / 2)
        return wilson(int(arr.sum()), int(arr.size), z=z)
    return bootstrap_ci(arr, n_boot=n_boot, alpha=alpha, seed=seed)


def paired_diff(
    a: Sequence[float], b: Sequence[float], n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> tuple[float, float, float]:
    """``(mean(a - b), lo, hi)``: the paired percentile bootstrap over items (``a[i]``, ``b[i]`` are the
    same prompt scored for two models). Empty input gives ``(0.0, -1.0, 1.0)``."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired_diff: need two equal-length lists, got {x.shape} and {y.shape}")
    if x.size == 0:
        return 0.0, -1.0, 1.0
    d = x - y
    lo, hi = _percentile(d, n_boot, alpha, seed)
    return float(d.mean()), lo, hi
