# RUN: tilec compile %s --target cpu --arg X=f32[?] --arg Y=f32[?] --arg n=i32 --emit tile --debuginfo --print-ir-after trace 2>&1 | filecheck %s
## Every traced op carries loc("<absolute kernel path>":line:col) of the Python expression
## that made it: constants and splats at the literal's use, the loop at its `for`, an
## inlined helper's ops at the helper's own lines.  The traced IR is printed with
## --print-ir-after trace.
import tilec as ct


@ct.kernel
def scaled_sum(X: ct.Tensor, Y: ct.Tensor, n: int):
    # CHECK: func.func @scaled_sum
    i = ct.tile_idx(0)
    # CHECK: tile.tile_idx 0 loc("{{.*}}debuginfo.py":[[# @LINE - 1]]:9)
    acc = ct.zeros([16])
    # CHECK: tile.splat %{{[^ ]+}} : f32 -> !tile.tile<16xf32> loc("{{.*}}debuginfo.py":[[# @LINE - 1]]:11)
    for k in range(n):
        # CHECK: scf.for %k
        x = ct.load_tile(X, offset=[k * 16], size=[16])
        # CHECK: tile.load %X[%{{[^ ]+}}] : !tile.tensor<?xf32> -> !tile.tile<16xf32> loc("{{.*}}debuginfo.py":[[# @LINE - 1]]:13)
        acc = acc + twice(x)
        # CHECK: tile.mul %x, %{{[^ ]+}} : !tile.tile<16xf32> loc("{{.*}}debuginfo.py":[[# @LINE + 12]]:12)
        # CHECK: tile.add %{{[^ ]+}}, %{{[^ ]+}} : !tile.tile<16xf32> loc("{{.*}}debuginfo.py":[[# @LINE - 2]]:15)
        # CHECK: scf.yield
    # CHECK: } loc("{{.*}}debuginfo.py":[[# @LINE - 8]]:5)
    ct.store_tile(Y, offset=[i * 16], tile=acc)
    # CHECK: tile.store %Y[%{{[^ ]+}}], %acc{{[^ ]*}} : !tile.tensor<?xf32>, !tile.tile<16xf32> loc("{{.*}}debuginfo.py":[[# @LINE - 1]]:5)
    # CHECK: } loc("{{.*}}debuginfo.py":[[# @LINE - 17]]:1)


def twice(t):
    """A plain helper, inlined where `scaled_sum` calls it (defined after it: the
    tracer looks names up when it traces)."""
    return t * 2.0
