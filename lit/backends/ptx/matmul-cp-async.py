# RUN: python %s | filecheck %s
## sm_80: the canonical K loop as a cp.async pipeline (tile-select-mma, tile-pipeline-cp-async,
## lower_cp_async.py).  A and B rows are 16-byte aligned (TensorSpec.div16), so each operand
## tile is copied by 16-byte cp.async.cg chunks, zero-filled (src-size 0) outside the tensor,
## 2 iterations ahead (3 stages: wait_group 1); fragments come from ldmatrix (.trans for the
## row-major B) and mma.sync accumulates in registers across iterations, each of the 2x2 warps on
## a 32x32 block (two m16 A fragments share each B fragment); the epilogue stores from the
## registers (v2 stores when the whole tile is in bounds).
import tilec as ct
from tilec import dtypes as dt
from tilec.driver import CompileOptions, compile_kernel
from tilec.frontend.tracer import ConstantSpec, TensorSpec


@ct.kernel
def mm(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int], BK: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.zeros([BM, BN], ct.float32)
    for k in range(ct.cdiv(A.shape[1], BK)):
        a = ct.load_tile(A, offset=[i * BM, k * BK], size=[BM, BK])
        b = ct.load_tile(B, offset=[k * BK, j * BN], size=[BK, BN])
        acc = acc + ct.matmul(a, b)
    ct.store_tile(C, offset=[i * BM, j * BN], tile=acc)


t = TensorSpec(dt.float16, (None, None), div16=True)
art = compile_kernel(mm, [t, t, TensorSpec(dt.float32, (None, None), div16=True), ConstantSpec(64),
                          ConstantSpec(64), ConstantSpec(32)], "sm_80", CompileOptions(num_stages=3))
print(art.gpu.ptx)

# CHECK: // tilec: kernel mm for sm_80, 4 warps, 24576 B shared memory
# CHECK-LABEL: .visible .entry mm(
# CHECK:         bar.sync 0;
# CHECK:         setp.lt.and.u32 %[[IN:p[0-9]+]], %{{r[0-9]+}}, %{{r[0-9]+}}, %{{p[0-9]+}};
# CHECK:         selp.b64 %[[SRC:rd[0-9]+]], %{{rd[0-9]+}}, %{{rd[0-9]+}}, %[[IN]];
# CHECK-NEXT:    selp.u32 %[[SIZE:r[0-9]+]], 16, 0, %[[IN]];
# CHECK:         cp.async.cg.shared.global [%{{r[0-9]+}}], [%[[SRC]]], 16, %[[SIZE]];
# CHECK:         cp.async.commit_group;
# CHECK:       $L_for_{{[0-9]+}}:
# CHECK:         cp.async.wait_group 1;
# CHECK-NEXT:    bar.sync 0;
# CHECK:         cp.async.cg.shared.global
# CHECK:         cp.async.commit_group;
# CHECK:         ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%[[A0:r[0-9]+]], %{{r[0-9]+}}, %{{r[0-9]+}}, %{{r[0-9]+}}}, [%[[AROW:r[0-9]+]]+0];
# CHECK-NEXT:    ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%[[A1:r[0-9]+]], %{{r[0-9]+}}, %{{r[0-9]+}}, %{{r[0-9]+}}}, [%[[AROW]]+1024];
# CHECK-NEXT:    ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%[[B0:r[0-9]+]], %[[B1:r[0-9]+]], %{{r[0-9]+}}, %{{r[0-9]+}}}, [%{{r[0-9]+}}+0];
# CHECK-NEXT:    mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%[[D0:f[0-9]+]], {{.*}}}, {%[[A0]], {{.*}}}, {%[[B0]], %[[B1]]}, {{.*}};
# CHECK-NEXT:    mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {{.*}}, {%[[A1]], {{.*}}}, {%[[B0]], %[[B1]]}, {{.*}};
# CHECK:         ldmatrix.sync.aligned.m8n8.x4.shared.b16 {{.*}}, [%{{r[0-9]+}}+0];
# CHECK:         mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%[[D0]], {{.*}}}, {{.*}}, {%[[D0]], {{.*}}};
# CHECK:       $L_endfor_{{[0-9]+}}:
# CHECK-NEXT:    cp.async.wait_all;
# CHECK-NEXT:    bar.sync 0;
# CHECK:         st.global.v2.f32 [%{{rd[0-9]+}}+0], {%{{f[0-9]+}}, %{{f[0-9]+}}};
# CHECK-NOT:     st.shared.v2.f32
