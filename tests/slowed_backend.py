"""A scan backend slowed on purpose, to check that the performance evaluator notices."""
import time

from ssmboard.variants.scans.reference import scan as _scan, step as _step

DELAY_S = 0.03


def scan(*args, **kwargs):
    time.sleep(DELAY_S)
    return _scan(*args, **kwargs)


def step(*args, **kwargs):
    time.sleep(DELAY_S)
    return _step(*args, **kwargs)
