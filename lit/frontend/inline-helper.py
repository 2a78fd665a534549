# RUN: tilec compile %s --kernel rowsum_kernel --target cpu --arg X=f32[?,?] --arg Y=f32[?] --arg BM=16 --arg BN=32 --emit tile | filecheck %s
## A call to a plain Python function is inlined: the module has one func.func and no
## func.call, and the helper's own run-time loop is an scf.for inside the kernel whose
## result is the helper's return value.  A kernel called from a kernel is inlined too.
import tilec as ct


def row_sums(X, row, BM, BN):
    acc = ct.zeros([BM])
    for c in range(0, X.shape[1], BN):
        acc = acc + ct.sum(ct.load_tile(X, offset=[row, c], size=[BM, BN]), axis=1)
    return acc


@ct.kernel
def store_scaled(Y, offset, t):
    ct.store_tile(Y, offset=[offset], tile=t * 2.0)


@ct.kernel
def rowsum_kernel(X: ct.Tensor, Y: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int]):
    i = ct.tile_idx(0)
    s = row_sums(X, i * BM, BM, BN)
    store_scaled(Y, i * BM, s)

# CHECK-LABEL: func.func @rowsum_kernel
#   CHECK-NOT:   func.call
#       CHECK:   %[[N:[^ ]+]] = tile.dim %X 1
#       CHECK:   %[[S:[^ ]+]] = scf.for %c = %{{[^ ]+}} to %[[N]] step %{{[^ ]+}} iter_args(%[[ACC:[^ ]+]] = %{{[^ ]+}}) -> (!tile.tile<16xf32>) : i32 {
#       CHECK:     tile.reduce "sum" %{{[^ ]+}} {axis = 1 : i64} : !tile.tile<16x32xf32> -> !tile.tile<16xf32>
#       CHECK:     scf.yield
#       CHECK:   %[[TWICE:[^ ]+]] = tile.mul %[[S]], %{{[^ ]+}} : !tile.tile<16xf32>
#       CHECK:   tile.store %Y[%{{[^ ]+}}], %[[TWICE]]
#   CHECK-NOT:   func.func
