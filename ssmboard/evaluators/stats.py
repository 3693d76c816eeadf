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
