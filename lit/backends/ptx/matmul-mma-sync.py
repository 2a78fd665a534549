# RUN: tilec compile %s --target sm_80 --emit ptx --arg A=f16[?,?] --arg B=f16[?,?] --arg C=f32[?,?] | filecheck %s
# RUN: tilec compile %s --target sm_90a --emit ptx --arg A=bf16[?,?] --arg B=bf16[?,?] --arg C=f32[?,?] | filecheck %s --check-prefix=BF16
## f16/bf16 tiles whose sizes are multiples of 16x8x16 go to the tensor cores: A and
## B^T are staged as 16-bit values, ldmatrix loads the fragments, mma.sync.m16n8k16
## accumulates in f32, and the result comes back through shared memory.
import tilec as ct


@ct.kernel
def mm(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor):
    a = ct.load_tile(A, offset=[0, 0], size=[32, 32])
    b = ct.load_tile(B, offset=[0, 0], size=[32, 16])
    ct.store_tile(C, offset=[0, 0], tile=a @ b)

# CHECK-LABEL: .visible .entry mm(
# CHECK:         cvt.rn.f16.f32 %[[H:h[0-9]+]], %{{f[0-9]+}};
# CHECK-NEXT:    st.shared.b16 [%{{r[0-9]+}}+0], %[[H]];
# CHECK:         bar.sync 0;
# CHECK:         ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%[[A0:r[0-9]+]], %{{r[0-9]+}}, %{{r[0-9]+}}, %{{r[0-9]+}}}, [%{{r[0-9]+}}+0];
# CHECK-NEXT:    ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%[[B0:r[0-9]+]], %{{r[0-9]+}}}, [%{{r[0-9]+}}+{{[0-9]+}}];
# CHECK-NEXT:    mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%[[D0:f[0-9]+]], {{.*}}}, {%[[A0]], {{.*}}}, {%[[B0]], {{.*}}}, {%[[D0]], {{.*}}};
# CHECK:         st.shared.v2.f32 [%{{r[0-9]+}}+{{[0-9]+}}], {%[[D0]], %{{f[0-9]+}}};

# BF16:          mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
