"""Independent chunks: every chunk after the first starts from a zero state.

An approximation, and an honest one: causal, exact in the first chunk (which starts from
``initial_state`` when given), approximate after it. Each chunk starts from zero, not from
its own end state: that would be wrong even in chunk 0 and would look at future tokens.
The final state returned is the last chunk's own end state, which is what the model has
seen; the decode step is the exact one and continues from that state.
"""
from __future__ import annotations

from ssmboard.variants.scans.reference import chunked_scan, step  # noqa: F401  (step: exact decode)


def scan(x, dt, A, B, C, *, chunk_size, D=None, dt_bias=None, dt_softplus=True,
         dt_limit=(0.0, float("inf")), initial_state=None, return_final_state=False):
    return chunked_scan(x, dt, A, B, C, chunk_size=chunk_size, D=D, dt_bias=dt_bias,
                        dt_softplus=dt_softplus, dt_limit=dt_limit, initial_state=initial_state,
                        return_final_state=return_final_state, pass_state=False)
