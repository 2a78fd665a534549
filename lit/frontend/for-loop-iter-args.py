# RUN: tilec compile %s --target cpu --arg A=f16[?,?] --arg B=f16[?,?] --arg C=f32[?,?] --arg BM=64 --arg BN=32 --arg BK=16 --emit tile | filecheck %s
## A run-time K loop: `range(0, A.shape[1], BK)` becomes an i32 scf.for bounded by
## tile.dim, the accumulator (bound before the loop, assigned in it) is its one
## iter_arg, and `acc += a @ b` ends up as one accumulating tile.matmul.
import tilec as ct


@ct.kernel
def matmul_kernel(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int],
                  BK: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.zeros([BM, BN])
    for k in range(0, A.shape[1], BK):
        a = ct.load_tile(A, offset=[i * BM, k], size=[BM, BK])
        b = ct.load_tile(B, offset=[k, j * BN], size=[BK, BN])
        acc += a @ b
    ct.store_tile(C, offset=[i * BM, j * BN], tile=acc)

# CHECK-LABEL: func.func @matmul_kernel
#  CHECK-SAME:   (%[[A:[^:]+]]: !tile.tensor<?x?xf16>, %[[B:[^:]+]]: !tile.tensor<?x?xf16>, %[[C:[^:]+]]: !tile.tensor<?x?xf32>)
#       CHECK:   %[[ACC:[^ ]+]] = tile.splat %{{[^ ]+}} : f32 -> !tile.tile<64x32xf32>
#       CHECK:   %[[K:[^ ]+]] = tile.dim %[[A]] 1
#       CHECK:   %[[RES:[^ ]+]] = scf.for %[[KK:[^ ]+]] = %{{[^ ]+}} to %[[K]] step %{{[^ ]+}} iter_args(%[[ACC_IN:[^ ]+]] = %[[ACC]]) -> (!tile.tile<64x32xf32>) : i32 {
#       CHECK:     %[[TA:[^ ]+]] = tile.load %[[A]][%{{[^ ]+}}, %[[KK]]] : !tile.tensor<?x?xf16> -> !tile.tile<64x16xf16>
#       CHECK:     %[[TB:[^ ]+]] = tile.load %[[B]][%[[KK]], %{{[^ ]+}}] : !tile.tensor<?x?xf16> -> !tile.tile<16x32xf16>
#  CHECK-NEXT:     %[[NEW:[^ ]+]] = tile.matmul %[[TA]], %[[TB]], %[[ACC_IN]] : !tile.tile<64x16xf16>, !tile.tile<16x32xf16> -> !tile.tile<64x32xf32>
#  CHECK-NEXT:     scf.yield %[[NEW]] : !tile.tile<64x32xf32>
#       CHECK:   tile.store %[[C]][%{{[^ ]+}}, %{{[^ ]+}}], %[[RES]] : !tile.tensor<?x?xf32>, !tile.tile<64x32xf32>
