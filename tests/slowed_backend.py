"""A scan backend slowed on purpose, to check that the performance evaluator notices.

It advances a fake clock instead of sleeping: the test hands that clock to the timing code,
so the measured difference is exact and cannot flake on a busy machine.
"""
from ssmboard.variants.scans.reference import scan as _scan, step as _step

DELAY_S = 0.03


class FakeClock:
    """Moves TICK_S at every read (so nothing takes zero time) and DELAY_S per slowed call."""

    TICK_S = 1e-6

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += self.TICK_S
        return self.now


CLOCK = FakeClock()


def scan(*args, **kwargs):
    CLOCK.now += DELAY_S
    return _scan(*args, **kwargs)


def step(*args, **kwargs):
    CLOCK.now += DELAY_S
    return _step(*args, **kwargs)
