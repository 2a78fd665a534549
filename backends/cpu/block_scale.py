"""`tile.quantize` and `tile.dequantize`: block scaling along the last tile axis.

Grid-batched like every value (leading grid dims, then the tile), which changes
nothing here: blocks run along the last axis only.  The numbers come from
`tilec.fp4` (`quantize_values` / `dequantize_values`), the same functions as the host
helpers `tilec.fp4.quantize` / `dequantize`, so a kernel and the host agree bit for bit.
"""

from __future__ import annotations

from tilec import fp4
from tilec.dialects import tile as T

from .numerics import dtype_of
from .program import Compiler, Step


def h_quantize(op: T.QuantizeOp, c: Compiler) -> Step:
    block = op.block.value.data
    scale_dtype = dtype_of(op.scales.type).np_dtype
    s, q, sc = c.slot(op.source), c.slot(op.result), c.slot(op.scales)

    def step(env, ctx):
        env[q], env[sc] = fp4.quantize_values(env[s], block, scale_dtype)
    return step


def h_dequantize(op: T.DequantizeOp, c: Compiler) -> Step:
    block = op.block.value.data
    out = dtype_of(op.result.type).np_dtype
    s, sc, r = c.slot(op.source), c.slot(op.scales), c.slot(op.result)

    def step(env, ctx):
        v = fp4.dequantize_values(env[s], env[sc], block)
        env[r] = v if v.dtype == out else v.astype(out)
    return step
