"""Block-scaled FP4 matmul: C = (A * SA) @ (B * SB)^T with e2m1 values, two per byte.

MXFP4: A [M, K] and B [N, K] (K-major, as FP4 tensor cores want) quantized on the host
with `tilec.fp4.quantize` to e2m1 with one ue8m0 scale per 32 elements along K.  The
kernel loads packed tiles and their scales in a K loop and accumulates the block-scaled
product in float32 (on sm_100a this is tcgen05 kind::mxf4).  The NVFP4 variant uses one
e4m3 scale per 16 elements plus a float32 scale per tensor (kind::mxf4nvf4).

The result is checked against an independent numpy float64 product of the values the
packed bytes and scales hold, decoded with ml_dtypes.

    python examples/fp4_matmul.py
"""

import ml_dtypes
import numpy as np

import tilec as ct
from tilec import fp4

VARIANTS = {  # name -> (block, scale dtype, per-tensor scale)
    "mxfp4": (32, ml_dtypes.float8_e8m0fnu, False),
    "nvfp4": (16, ml_dtypes.float8_e4m3fn, True),
}


@ct.kernel
def fp4_matmul_kernel(A: ct.Tensor, SA: ct.Tensor, B: ct.Tensor, SB: ct.Tensor, C: ct.Tensor, out_scale: float,
                      BM: ct.Constant[int], BN: ct.Constant[int], BK: ct.Constant[int], BLOCK: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.zeros([BM, BN], ct.float32)
    for k in range(A.shape[1] // BK):
        a = ct.load_tile(A, offset=[i * BM, k * BK], size=[BM, BK])                  # packed e2m1
        b = ct.load_tile(B, offset=[j * BN, k * BK], size=[BN, BK])
        # one scale per BLOCK elements of K; e8m0 has no zero, so pad ragged rows with 1.0
        sa = ct.load_tile(SA, offset=[i * BM, k * (BK // BLOCK)], size=[BM, BK // BLOCK], padding=1.0)
        sb = ct.load_tile(SB, offset=[j * BN, k * (BK // BLOCK)], size=[BN, BK // BLOCK], padding=1.0)
        acc = ct.matmul(a, b.T, acc, a_scale=sa, b_scale=sb)
    ct.store_tile(C, offset=[i * BM, j * BN], tile=acc * out_scale)


def fp4_matmul(a, sa, b, sb, out, out_scale=1.0, BM=64, BN=64, BK=64):
    """`out` = block-scaled a @ b^T * out_scale; a, b: `ct.fp4_tensor`s [M, K] and [N, K]."""
    (m, k), n = a.shape, b.shape[0]
    block = k // sa.shape[1]
    assert k % BK == 0 and BK % block == 0, "K must be a multiple of BK, and BK of the scale block"
    fp4_matmul_kernel[(ct.cdiv(m, BM), ct.cdiv(n, BN))](a, sa, b, sb, out, out_scale, BM, BN, BK, block)
    return out


def decode(packed, scales, k):
    """Independent float64 decode: nibbles (low = even element) as e2m1 through ml_dtypes,
    times each block's scale."""
    codes = np.stack([packed & 0xF, packed >> 4], axis=-1).reshape(packed.shape[0], -1)[:, :k]
    values = codes.astype(np.uint8).view(ml_dtypes.float4_e2m1fn).astype(np.float64)
    block = k // scales.shape[1]
    return values * np.repeat(scales.astype(np.float64), block, axis=1)


def reference(pa, sa, pb, sb, k, out_scale=1.0):
    return decode(pa, sa, k) @ decode(pb, sb, k).T * out_scale


def data(rng, rows, k, outliers=4):
    """Normal data with a few large outliers (they set their blocks' scales)."""
    x = rng.standard_normal((rows, k)).astype(np.float32)
    idx = rng.integers(0, x.size, outliers)
    x.flat[idx] = rng.choice([-1, 1], outliers) * rng.uniform(20, 60, outliers)
    return x


def main(m: int = 256, n: int = 192, k: int = 512, variant: str = "mxfp4", seed: int = 0) -> float:
    block, scale_dtype, per_tensor = VARIANTS[variant]
    rng = np.random.default_rng(seed)
    x, w = data(rng, m, k), data(rng, n, k)
    # NVFP4's per-tensor scale maps each tensor's amax onto 6 * 448 (e2m1 max * e4m3 max)
    gx = float(np.abs(x).max()) / (6 * 448) if per_tensor else None
    gw = float(np.abs(w).max()) / (6 * 448) if per_tensor else None
    pa, sa = fp4.quantize(x, block, scale_dtype, global_scale=gx)
    pb, sb = fp4.quantize(w, block, scale_dtype, global_scale=gw)
    out_scale = float(np.float32(gx) * np.float32(gw)) if per_tensor else 1.0
    c = fp4_matmul(ct.fp4_tensor(pa, (m, k)), sa, ct.fp4_tensor(pb, (n, k)), sb,
                   np.full((m, n), np.nan, np.float32), out_scale)
    ref = reference(pa, sa, pb, sb, k, out_scale)
    err = float(np.max(np.abs(c - ref)) / np.max(np.abs(ref)))
    exact = x.astype(np.float64) @ w.T.astype(np.float64)
    quant = float(np.linalg.norm(ref - exact) / np.linalg.norm(exact))
    print(f"{variant} matmul {m}x{n}x{k} (block {block}, {np.dtype(scale_dtype).name} scales): max relative "
          f"error vs numpy float64 = {err:.3g} (FP4 quantization error vs the unquantized product: {quant:.3g})")
    assert err < 1e-5
    return err


if __name__ == "__main__":
    main(variant="mxfp4")
    main(variant="nvfp4")
