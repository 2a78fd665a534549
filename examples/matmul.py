"""Matmul with a K loop: C = A @ B, fp16/bf16/fp32 inputs accumulated in fp32, ragged
M, N and K handled by boundary checks (out-of-bounds elements read as 0).

    python examples/matmul.py
"""

import numpy as np

import tilec as ct


@ct.kernel
def matmul_kernel(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor,
                  BM: ct.Constant[int], BN: ct.Constant[int], BK: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.zeros([BM, BN], ct.float32)
    for k in range(ct.cdiv(A.shape[1], BK)):
        a = ct.load_tile(A, offset=[i * BM, k * BK], size=[BM, BK])
        b = ct.load_tile(B, offset=[k * BK, j * BN], size=[BK, BN])
        acc = acc + ct.matmul(a, b)
    ct.store_tile(C, offset=[i * BM, j * BN], tile=acc)


@ct.kernel
def matmul_grouped(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int],
                   BK: ct.Constant[int], GROUP_M: ct.Constant[int]):
    """The same product on a 1-D grid walked in groups of GROUP_M row blocks, so programs that
    run together share B's column blocks in L2 (bench/gemm.py's kernel)."""
    pid = ct.tile_idx(0)
    num_m = ct.cdiv(A.shape[0], BM)
    num_n = ct.cdiv(B.shape[1], BN)
    in_group = GROUP_M * num_n
    first_m = (pid // in_group) * GROUP_M
    size_m = ct.minimum(num_m - first_m, GROUP_M)
    i = first_m + (pid % in_group) % size_m
    j = (pid % in_group) // size_m
    acc = ct.zeros([BM, BN], ct.float32)
    for k in range(ct.cdiv(A.shape[1], BK)):
        a = ct.load_tile(A, offset=[i * BM, k * BK], size=[BM, BK])
        b = ct.load_tile(B, offset=[k * BK, j * BN], size=[BK, BN])
        acc = acc + ct.matmul(a, b)
    ct.store_tile(C, offset=[i * BM, j * BN], tile=acc)


def matmul(a, b, out, BM=64, BN=64, BK=32):
    m, n = a.shape[0], b.shape[1]
    matmul_kernel[(ct.cdiv(m, BM), ct.cdiv(n, BN))](a, b, out, BM, BN, BK)
    return out


def reference(a, b):
    return a.astype(np.float64) @ b.astype(np.float64)


def main(m: int = 200, n: int = 136, k: int = 100, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((k, n)).astype(np.float16)
    c = matmul(a, b, np.full((m, n), np.nan, np.float32))
    ref = reference(a, b)
    err = float(np.max(np.abs(c - ref)) / np.max(np.abs(ref)))
    print(f"matmul {m}x{n}x{k} f16->f32: max relative error vs numpy float64 = {err:.3g}")
    assert err < 1e-5
    return err


if __name__ == "__main__":
    main()
