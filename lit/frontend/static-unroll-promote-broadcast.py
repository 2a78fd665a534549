# RUN: tilec compile %s --target cpu --arg X=f16[?,?] --arg B=f32[?] --arg Y=f32[?,?] --arg N=3 --emit tile | filecheck %s
## Trace-time Python leaves no trace in the IR: ct.static_range(N) unrolls into N
## copies of its body (no scf.for) and the `if` on the loop's Python int is decided.
## Implicit conversions become explicit ops: f16 + f32 casts the f16 side (tile.cast),
## `b[None, :]` is a tile.reshape and mixing shapes inserts tile.broadcast, a Python
## scalar becomes a splat of an arith.constant, ct.where is tile.select.
import tilec as ct


@ct.kernel
def unrolled_bias(X: ct.Tensor, B: ct.Tensor, Y: ct.Tensor, N: ct.Constant[int]):
    x = ct.load_tile(X, offset=[0, 0], size=[8, 16])
    b = ct.load_tile(B, offset=[0], size=[16])
    y = x + b[None, :]
    for r in ct.static_range(N):
        if r % 2 == 0:
            y = y * 0.5
        else:
            y = y - r
    ct.store_tile(Y, offset=[0, 0], tile=ct.where(y > 0, y, 0.0))

# CHECK-LABEL: func.func @unrolled_bias
#  CHECK-SAME:   (%[[X:[^:]+]]: !tile.tensor<?x?xf16>, %[[B:[^:]+]]: !tile.tensor<?xf32>, %[[Y:[^:]+]]: !tile.tensor<?x?xf32>)
#   CHECK-NOT:   scf.for
#       CHECK:   %[[XT:[^ ]+]] = tile.load %[[X]]{{.*}} -> !tile.tile<8x16xf16>
#       CHECK:   %[[BT:[^ ]+]] = tile.load %[[B]]{{.*}} -> !tile.tile<16xf32>
#   CHECK-DAG:   %[[XF:[^ ]+]] = tile.cast %[[XT]] : !tile.tile<8x16xf16> -> !tile.tile<8x16xf32>
#   CHECK-DAG:   %[[ROW:[^ ]+]] = tile.reshape %[[BT]] : !tile.tile<16xf32> -> !tile.tile<1x16xf32>
#   CHECK-DAG:   %[[ROWS:[^ ]+]] = tile.broadcast %[[ROW]] : !tile.tile<1x16xf32> -> !tile.tile<8x16xf32>
#       CHECK:   %[[Y0:[^ ]+]] = tile.add %[[XF]], %[[ROWS]] : !tile.tile<8x16xf32>
#       CHECK:   %[[Y1:[^ ]+]] = tile.mul %[[Y0]], %{{[^ ]+}} : !tile.tile<8x16xf32>
#       CHECK:   %[[Y2:[^ ]+]] = tile.sub %[[Y1]], %{{[^ ]+}} : !tile.tile<8x16xf32>
#       CHECK:   %[[Y3:[^ ]+]] = tile.mul %[[Y2]], %{{[^ ]+}} : !tile.tile<8x16xf32>
#       CHECK:   %[[POS:[^ ]+]] = tile.cmp "gt" %[[Y3]], %{{[^ ]+}} : !tile.tile<8x16xf32> -> !tile.tile<8x16xi1>
#       CHECK:   %[[OUT:[^ ]+]] = tile.select %[[POS]], %[[Y3]], %{{[^ ]+}} : !tile.tile<8x16xi1>, !tile.tile<8x16xf32>
#       CHECK:   tile.store %[[Y]][%{{[^ ]+}}, %{{[^ ]+}}], %[[OUT]]
#   CHECK-NOT:   scf.
