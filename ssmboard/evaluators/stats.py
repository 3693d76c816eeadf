"""Summaries of repeated measurements, and whether two of them differ beyond noise."""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    median: float
    p90: float
    mean: float
    stdev: float
    n: int

    @property
    def stderr_of_median(self) -> float | None:
        """Asymptotic standard error of the median (1.2533 sigma / sqrt(n)); None from one sample."""
        return 1.2533 * self.stdev / math.sqrt(self.n) if self.n > 1 else None


def quantile(samples: list[float], q: float) -> float:
    """Linear-interpolated quantile, q in [0, 1]."""
    if not samples:
        raise ValueError("no samples")
    xs = sorted(samples)
    pos = q * (len(xs) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summarize(samples: list[float]) -> Summary:
    n = len(samples)
    return Summary(median=statistics.median(samples), p90=quantile(samples, 0.9),
                   mean=statistics.fmean(samples), stdev=statistics.stdev(samples) if n > 1 else 0.0, n=n)


def differ_beyond_noise(a: float, a_err: float | None, b: float, b_err: float | None, z: float = 2.0) -> bool | None:
    """True when |a - b| exceeds z combined standard errors; None when an error is unknown."""
    if a_err is None or b_err is None or math.isnan(a_err) or math.isnan(b_err):
        return None
    return abs(a - b) > z * math.hypot(a_err, b_err)


# -- differences between two variants, with their 95% interval -----------------------------
@dataclass(frozen=True)
class Difference:
    """B minus A with a confidence interval; ``within_noise`` when the interval covers 0."""

    delta: float
    lo: float
    hi: float
    method: str  # "paired-bootstrap" (item scores) or "stderr" (stored standard errors)
    n: int | None = None  # items paired, for the bootstrap
    level: float = 0.95

    @property
    def within_noise(self) -> bool:
        return self.lo <= 0.0 <= self.hi

    def verdict(self, higher_is_better: bool) -> str:
        """'within noise', or whether B is 'better' or 'worse' than A beyond it."""
        if self.within_noise:
            return "within noise"
        return "better" if (self.delta > 0) == higher_is_better else "worse"

    def to_dict(self) -> dict:
        return {"delta": self.delta, "lo": self.lo, "hi": self.hi, "method": self.method, "n": self.n,
                "level": self.level, "within_noise": self.within_noise}


def paired_bootstrap(a: list[float], b: list[float], *, resamples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> Difference:
    """Mean of the per-item differences ``b - a`` and its percentile-bootstrap interval.

    ``a[i]`` and ``b[i]`` score the same item; items are resampled with replacement (seeded,
    so the same scores give the same interval). Identical scores give the interval [0, 0].
    """
    import numpy as np

    if len(a) != len(b) or not a:
        raise ValueError(f"paired scores need equal, non-zero lengths (got {len(a)} and {len(b)})")
    if resamples < 1000:
        raise ValueError("use at least 1000 bootstrap resamples")
    d = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    for start in range(0, resamples, 256):  # chunks keep memory flat for many items
        stop = min(resamples, start + 256)
        idx = rng.integers(0, len(d), size=(stop - start, len(d)))
        means[start:stop] = d[idx].mean(axis=1)
    alpha = (1.0 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return Difference(float(d.mean()), float(lo), float(hi), "paired-bootstrap", n=len(d), level=level)


def stderr_difference(a: float, a_err: float | None, b: float, b_err: float | None,
                      level: float = 0.95) -> Difference | None:
    """``b - a`` with a normal interval from the two standard errors; None when one is unknown."""
    if a_err is None or b_err is None or math.isnan(a_err) or math.isnan(b_err):
        return None
    z = statistics.NormalDist().inv_cdf(0.5 + level / 2)
    half = z * math.hypot(a_err, b_err)
    return Difference(b - a, b - a - half, b - a + half, "stderr", level=level)
