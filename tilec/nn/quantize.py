"""`quantize_fp4`: per-block FP4 (e2m1) quantization of a tensor, as a tilec kernel.

    packed, scales, g = quantize_fp4(w, scale="mx")      # w [..., K] f32/f16/bf16 (torch or numpy)

Each row of the last axis is cut into blocks (32 elements with one e8m0 scale for
``scale="mx"``, 16 with one e4m3 scale for ``scale="nv"``) and quantized exactly as
`ct.quantize` / `tilec.fp4.quantize` define it.  The result is

* ``packed``: uint8 ``[..., K/2]``, two e2m1 codes per byte along K (element 2i in the
  low nibble), the storage of a ``ct.float4_e2m1fn`` tensor;
* ``scales``: ``[..., K/block]`` float8_e8m0fnu (MX) or float8_e4m3fn (NV);
* ``global_scale``: NV's per-tensor float32 scale (None for MX): ``amax(|x|) / (6 * 448)``
  unless given, so the largest block scale lands on e4m3's largest value; the values are
  ``e2m1 * scale * global_scale``.

Torch CUDA tensors are quantized on the GPU, CPU torch tensors and numpy arrays by the
CPU backend; the outputs are of the input's kind (torch on the input's device, or numpy).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

import tilec as ct

#: scale format -> (block, tilec scale dtype)
FORMATS = {"mx": (32, ct.float8_e8m0fnu), "nv": (16, ct.float8_e4m3fn)}
E2M1_MAX, E4M3_MAX = 6.0, 448.0
#: rows x columns each program quantizes
BLOCK_ROWS, BLOCK_COLS = 16, 128


class FP4Quantized(NamedTuple):
    packed: object          # uint8 [..., K/2]
    scales: object          # [..., K/block] float8_e8m0fnu / float8_e4m3fn
    global_scale: float | None


@ct.kernel
def quantize_mx_kernel(X: ct.Tensor, Q: ct.Tensor, S: ct.Tensor, BR: ct.Constant[int], BC: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    x = ct.load_tile(X, offset=[i * BR, j * BC], size=[BR, BC])
    q, s = ct.quantize(x, dtype=ct.float4_e2m1fn, block=32, scale_dtype=ct.float8_e8m0fnu)
    ct.store_tile(Q, offset=[i * BR, j * BC], tile=q)
    ct.store_tile(S, offset=[i * BR, j * (BC // 32)], tile=s)


@ct.kernel
def quantize_nv_kernel(X: ct.Tensor, Q: ct.Tensor, S: ct.Tensor, g: float, BR: ct.Constant[int],
                       BC: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    x = ct.load_tile(X, offset=[i * BR, j * BC], size=[BR, BC])
    q, s = ct.quantize(x, dtype=ct.float4_e2m1fn, block=16, scale_dtype=ct.float8_e4m3fn, global_scale=g)
    ct.store_tile(Q, offset=[i * BR, j * BC], tile=q)
    ct.store_tile(S, offset=[i * BR, j * (BC // 16)], tile=s)


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


def check_format(scale: str) -> tuple[int, object]:
    if scale not in FORMATS:
        raise ValueError(f"scale must be 'mx' (e8m0 per 32) or 'nv' (e4m3 per 16), got {scale!r}")
    return FORMATS[scale]


def _to_numpy(x) -> np.ndarray:
    """A CPU torch tensor (any float dtype, bf16 included) or array-like as numpy."""
    if _is_torch(x):
        import torch

        if x.dtype == torch.bfloat16:
            import ml_dtypes

            return x.detach().contiguous().view(torch.int16).numpy().view(ml_dtypes.bfloat16)
        return x.detach().contiguous().numpy()
    return np.ascontiguousarray(x)


def quantize_fp4(x, scale: str = "mx", global_scale: float | None = None) -> FP4Quantized:
    """Quantize `x` [..., K] (K a multiple of the block) to packed e2m1 with block scales."""
    block, sdt = check_format(scale)
    shape = tuple(x.shape)
    if len(shape) < 1 or shape[-1] % block:
        raise ValueError(f"quantize_fp4 needs a last dim that is a multiple of {block} ({scale}), got shape "
                         f"{list(shape)}")
    k = shape[-1]
    rows = math.prod(shape[:-1])
    g = None
    if scale == "nv":
        auto = global_scale is None
        if auto:
            amax = float(x.abs().max()) if _is_torch(x) else float(np.max(np.abs(_to_numpy(x).astype(np.float32))))
            global_scale = amax / (E2M1_MAX * E4M3_MAX) if amax > 0 else 1.0
        g = float(np.float32(global_scale))
        if not (math.isfinite(g) and g > 0):   # every value is e2m1 * scale * g: 0 / NaN / inf ruin them all
            raise ValueError(f"quantize_fp4: the NV global_scale must be a positive finite float32, got {g}"
                             + (" (amax(|x|) / 2688 of this input: inf, or too small for float32)" if auto else ""))
    grid = (ct.cdiv(max(rows, 1), BLOCK_ROWS), ct.cdiv(k, BLOCK_COLS))
    if _is_torch(x) and x.device.type == "cuda":
        import torch

        x2 = x.reshape(rows, k).contiguous()
        packed = torch.empty((rows, k // 2), dtype=torch.uint8, device=x.device)
        scales = torch.empty((rows, k // block), dtype=getattr(torch, sdt.api_name), device=x.device)
    else:
        x2 = _to_numpy(x).reshape(rows, k)
        packed = np.zeros((rows, k // 2), np.uint8)
        scales = np.zeros((rows, k // block), sdt.np_dtype)
    q = ct.fp4_tensor(packed, (rows, k))
    if rows:
        if scale == "mx":
            quantize_mx_kernel[grid](x2, q, scales, BLOCK_ROWS, BLOCK_COLS)
        else:
            quantize_nv_kernel[grid](x2, q, scales, g, BLOCK_ROWS, BLOCK_COLS)
    packed = packed.reshape(*shape[:-1], k // 2)
    scales = scales.reshape(*shape[:-1], k // block)
    if _is_torch(x) and x.device.type != "cuda":
        import torch

        packed = torch.from_numpy(packed)
        scales = torch.from_numpy(scales.view(np.uint8)).view(getattr(torch, sdt.api_name))
    return FP4Quantized(packed, scales, g)
