# RUN: python %s | filecheck %s
## launch_pdl=True (programmatic dependent launch, sm_90+): a kernel lets its successor start at
## once and waits for its predecessor before its first global access.  The W4A16 loop (here
## FP4Linear's kernel at M <= 8) takes that wait over: its prologue's weight and scale boxes go out first, the wait follows, then the
## activations (ld.global at M <= 8); the cp.async fallback copies its weight prologue, then waits.
import tilec as ct
from tilec import dtypes as dt
from tilec.driver import CompileOptions, compile_kernel
from tilec.frontend.tracer import ConstantSpec, ScalarSpec, TensorSpec
from tilec.nn.linear import w4a16_kernel


@ct.kernel
def add(X: ct.Tensor, Y: ct.Tensor, Z: ct.Tensor, BLOCK: ct.Constant[int]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * BLOCK], size=[BLOCK])
    ct.store_tile(Z, offset=[i * BLOCK], tile=x + ct.load_tile(Y, offset=[i * BLOCK], size=[BLOCK]))


v = TensorSpec(dt.float32, (None,))
print(compile_kernel(add, [v, v, v, ConstantSpec(256)], "sm_90a", CompileOptions(launch_pdl=True)).gpu.ptx)
t = lambda name: TensorSpec(dt.lookup(name), (None, None))  # noqa: E731
specs = [t("f16"), t("f4E2M1FN"), t("f8E8M0FNU"), TensorSpec(dt.float16, (None,)), t("f16"), ScalarSpec(dt.float32),
         ConstantSpec(8), ConstantSpec(64), ConstantSpec(128), ConstantSpec(32), ConstantSpec(False)]
print(compile_kernel(w4a16_kernel, specs, "sm_90a", CompileOptions(num_warps=16, launch_pdl=True)).gpu.ptx)

# CHECK:       // tilec: kernel add for sm_90a
# CHECK:         ld.param.u32
# CHECK:         griddepcontrol.launch_dependents;
# CHECK-NEXT:    griddepcontrol.wait;
# CHECK-NOT:     griddepcontrol
# CHECK:         ld.global
# CHECK:       // tilec: kernel w4a16_kernel for sm_90a
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
