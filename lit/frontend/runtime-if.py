# RUN: tilec compile %s --target cpu --arg X=f32[?] --arg Y=f32[?] --arg n=i32 --arg SHIFT=true --emit tile | filecheck %s
# RUN: tilec compile %s --target cpu --arg X=f32[?] --arg Y=f32[?] --arg n=i32 --arg SHIFT=false --emit tile | filecheck %s --check-prefix=NOSHIFT
## An `if` on a run-time scalar becomes scf.if yielding every name assigned in a branch
## (the else branch yields the value from before the if); an `if` on a ct.Constant is
## decided while tracing and leaves no scf.if behind.
import tilec as ct


@ct.kernel
def double_first_rows(X: ct.Tensor, Y: ct.Tensor, n: int, SHIFT: ct.Constant[bool]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * 16], size=[16])
    y = x
    if i < n:
        y = x * 2.0
    if SHIFT:
        y = y + 1.0
    ct.store_tile(Y, offset=[i * 16], tile=y)

# CHECK-LABEL: func.func @double_first_rows
#  CHECK-SAME:   (%[[X:[^:]+]]: !tile.tensor<?xf32>, %[[Y:[^:]+]]: !tile.tensor<?xf32>, %[[N:[^:]+]]: i32)
#       CHECK:   %[[I:[^ ]+]] = tile.tile_idx 0
#       CHECK:   %[[XT:[^ ]+]] = tile.load %[[X]]
#       CHECK:   %[[COND:[^ ]+]] = tile.cmp "lt" %[[I]], %[[N]] : i32 -> i1
#       CHECK:   %[[YIF:[^ ]+]] = scf.if %[[COND]] -> (!tile.tile<16xf32>) {
#       CHECK:     %[[TWICE:[^ ]+]] = tile.mul %[[XT]], %{{[^ ]+}} : !tile.tile<16xf32>
#  CHECK-NEXT:     scf.yield %[[TWICE]] : !tile.tile<16xf32>
#  CHECK-NEXT:   } else {
#  CHECK-NEXT:     scf.yield %[[XT]] : !tile.tile<16xf32>
#  CHECK-NEXT:   }
#   CHECK-NOT:   scf.if
#       CHECK:   %[[SHIFTED:[^ ]+]] = tile.add %[[YIF]], %{{[^ ]+}} : !tile.tile<16xf32>
#       CHECK:   tile.store %[[Y]][%{{[^ ]+}}], %[[SHIFTED]]

# NOSHIFT-LABEL: func.func @double_first_rows
#       NOSHIFT:   %[[YIF:[^ ]+]] = scf.if
#   NOSHIFT-NOT:   tile.add
#       NOSHIFT:   tile.store %{{[^ ]+}}[%{{[^ ]+}}], %[[YIF]]
