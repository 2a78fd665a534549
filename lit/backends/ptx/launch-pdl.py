# RUN: python %s | filecheck %s
## launch_pdl=True (programmatic dependent launch, sm_90+): a kernel lets its successor start at
## once and waits for its predecessor before its first global access.  The W4A16 loop takes that
## wait over: its prologue's weight and scale boxes go out first, the wait follows, then the
## activations (ld.global at M <= 8); the cp.async fallback copies its weight prologue, then waits.
import tilec as ct
from tilec import dtypes as dt
from tilec.driver import CompileOptions, compile_kernel
from tilec.frontend.tracer import ConstantSpec, TensorSpec


@ct.kernel
def add(X: ct.Tensor, Y: ct.Tensor, Z: ct.Tensor, BLOCK: ct.Constant[int]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * BLOCK], size=[BLOCK])
    ct.store_tile(Z, offset=[i * BLOCK], tile=x + ct.load_tile(Y, offset=[i * BLOCK], size=[BLOCK]))


@ct.kernel
def w4a16(X: ct.Tensor, WQ: ct.Tensor, WS: ct.Tensor, Y: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int],
          BK: ct.Constant[int], BLOCK: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.zeros([BM, BN], ct.float32)
    for k in range(X.shape[1] // BK):
        x = ct.load_tile(X, offset=[i * BM, k * BK], size=[BM, BK])
        wq = ct.load_tile(WQ, offset=[j * BN, k * BK], size=[BN, BK])
        ws = ct.load_tile(WS, offset=[j * BN, k * (BK // BLOCK)], size=[BN, BK // BLOCK])
        acc = ct.matmul(x, ct.dequantize(wq, ws, dtype=x.dtype).T, acc)
    ct.store_tile(Y, offset=[i * BM, j * BN], tile=acc)


v = TensorSpec(dt.float32, (None,))
print(compile_kernel(add, [v, v, v, ConstantSpec(256)], "sm_90a", CompileOptions(launch_pdl=True)).gpu.ptx)
t = lambda name: TensorSpec(dt.lookup(name), (None, None))  # noqa: E731
print(compile_kernel(w4a16, [t("f16"), t("f4E2M1FN"), t("f8E8M0FNU"), t("f32"), ConstantSpec(8), ConstantSpec(64),
                             ConstantSpec(128), ConstantSpec(32)], "sm_90a",
                     CompileOptions(num_warps=16, launch_pdl=True)).gpu.ptx)

# CHECK:       // tilec: kernel add for sm_90a
# CHECK:         ld.param.u32
# CHECK:         griddepcontrol.launch_dependents;
# CHECK-NEXT:    griddepcontrol.wait;
# CHECK-NOT:     griddepcontrol
# CHECK:         ld.global
# CHECK:       // tilec: kernel w4a16 for sm_90a
# CHECK:         griddepcontrol.launch_dependents;
# CHECK-NOT:     {{ld|st|cp|red|atom}}.{{.*}}global
# CHECK:       $L_w4a16_tma_prologue_{{[0-9]+}}:
# CHECK:         cp.async.bulk.tensor.2d.shared::cluster.global
# CHECK:       $L_w4a16_tma_prologue_done_{{[0-9]+}}:
# CHECK-NEXT:    griddepcontrol.wait;
# CHECK:         ld.global.nc.v4.b32
# CHECK:       $L_w4a16_cp_async_{{[0-9]+}}:
# CHECK:         cp.async.cg.shared.global
# CHECK:         cp.async.commit_group;
# CHECK:         griddepcontrol.wait;
# CHECK:         ld.global.nc.v4.b32
