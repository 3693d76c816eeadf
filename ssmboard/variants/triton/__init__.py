"""Fused Triton kernels for Mamba2's SSD scan and decode step.

``ssd`` is the exact backend, ``ssd_independent`` starts every chunk from a zero state.
Importing this package (or its modules) needs triton and torch but no GPU: whether a
GPU or Triton's CPU interpreter (``TRITON_INTERPRET=1``) runs the kernels is decided
when a kernel is first called.
"""
