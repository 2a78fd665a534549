"""Fused epilogue: Y = dropout(relu(A @ B) * scale, p), one kernel, no intermediate in memory.
The dropout mask comes from Philox4x32-10 keyed by `seed` (see `ct.dropout`), so it is
reproducible and the same on every backend.

    python examples/matmul_relu_dropout.py
"""

import numpy as np

import tilec as ct


@ct.kernel
def matmul_relu_scale_dropout(A: ct.Tensor, B: ct.Tensor, Y: ct.Tensor, scale: float, p: float, seed: int,
                              BM: ct.Constant[int], BN: ct.Constant[int], BK: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.zeros([BM, BN], ct.float32)
    for k in range(ct.cdiv(A.shape[1], BK)):
        a = ct.load_tile(A, offset=[i * BM, k * BK], size=[BM, BK])
        b = ct.load_tile(B, offset=[k * BK, j * BN], size=[BK, BN])
        acc += a @ b
    y = ct.relu(acc) * scale
    y = ct.dropout(y, p, seed=seed)
    ct.store_tile(Y, offset=[i * BM, j * BN], tile=y)


def launch(a, b, out, scale, p, seed, BM=32, BN=32, BK=32):
    m, n = a.shape[0], b.shape[1]
    matmul_relu_scale_dropout[(ct.cdiv(m, BM), ct.cdiv(n, BN))](a, b, out, scale, p, seed, BM, BN, BK)
    return out


def keep_mask(m, n, p, seed, BM=32, BN=32):
    """The elements ct.dropout keeps, recomputed from its documented counter scheme:
    counter = program_linear_id * BM*BN + index inside the tile; keep if u >= p."""
    from tilec.backends.cpu.philox import rand as philox_rand

    gm, gn = -(-m // BM), -(-n // BN)
    keep = np.zeros((gm * BM, gn * BN), bool)
    local = np.arange(BM * BN, dtype=np.uint64).reshape(BM, BN)
    for i in range(gm):
        for j in range(gn):
            counter = ((i * gn + j) * BM * BN + local).astype(np.uint32)
            keep[i * BM:(i + 1) * BM, j * BN:(j + 1) * BN] = philox_rand(seed, counter) >= np.float32(p)
    return keep[:m, :n]


def reference(a, b, scale, p, seed, BM=32, BN=32):
    y = np.maximum(a.astype(np.float64) @ b.astype(np.float64), 0.0) * scale
    return np.where(keep_mask(a.shape[0], b.shape[1], p, seed, BM, BN), y / (1.0 - p), 0.0)


def main(m: int = 100, n: int = 70, k: int = 90, p: float = 0.25, seed: int = 1234) -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((k, n)).astype(np.float16)
    y = launch(a, b, np.full((m, n), np.nan, np.float32), 0.5, p, seed)
    ref = reference(a, b, 0.5, p, seed)
    err = float(np.max(np.abs(y - ref)))
    dropped = float(np.mean(y == 0))
    print(f"matmul+relu+scale+dropout {m}x{n}x{k} p={p}: max |error| = {err:.3g}, zero fraction {dropped:.3f}")
    assert err < 1e-3
    return err


if __name__ == "__main__":
    main()
