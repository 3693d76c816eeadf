"""Peak memory of a measured region: the allocator's on GPU, the process's peak RSS on CPU.

On Linux, writing 5 to /proc/self/clear_refs resets the peak RSS (VmHWM), so each region
is measured on its own; where that is not possible the peak since process start is
reported and flagged.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class PeakMemory:
    max_allocated_bytes: int | None = None  # GPU allocator
    max_reserved_bytes: int | None = None  # GPU allocator
    peak_rss_bytes: int | None = None  # CPU process
    rss_reset: bool = True  # False when the CPU peak is since process start


def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakMemoryTracker:
    """Context manager: ``with PeakMemoryTracker(cuda) as t: ...; t.result``."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.result = PeakMemory()

    def __enter__(self) -> "PeakMemoryTracker":
        if self.cuda:
            import torch
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            try:
                Path("/proc/self/clear_refs").write_text("5")
            except OSError:
                self.result.rss_reset = False
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            import torch
            torch.cuda.synchronize()
            self.result.max_allocated_bytes = int(torch.cuda.max_memory_allocated())
            self.result.max_reserved_bytes = int(torch.cuda.max_memory_reserved())
        else:
            hwm = _status_kib("VmHWM")
            if hwm is None:
                import resource
                hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                self.result.rss_reset = False
            self.result.peak_rss_bytes = hwm * 1024
