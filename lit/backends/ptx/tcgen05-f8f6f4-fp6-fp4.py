# RUN: tilec compile %s --target sm_100a --emit ptx --arg A=float6_e2m3fn[?,?] --arg B=float4_e2m1fn[?,?] --arg C=f32[?,?] | filecheck %s
## Unscaled fp6 x fp4 on sm_100a: tcgen05.mma kind::f8f6f4 with A e2m3 (idesc type code 3) and
## B e2m1 (code 5): the fp4 operand is cast to e2m3 by the front end (exact), so the MMA takes
## the e2m1 bytes as they are.  Both operands are copied from global memory by the matmul into
## the padded K-major layout: 16 k per 16-byte core-matrix row (LBO 128 B, SBO 64 k / 16 * 128 =
## 512 B), fp6 packed into the first 12 bytes (st.shared.v2.b32 + st.shared.b32), fp4 into
## the first 8 (st.shared.v2.b32), the rest padding.  idesc 0x08101590: D f32, A 3, B 5, N 64, M 128;
## smem descriptors 0x0000402000080000 (no swizzle, LBO 128 B, SBO 512 B), + 16 (256 B) per K32 MMA.
import tilec as ct


@ct.kernel
def fp6_fp4(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.zeros([128, 64], ct.float32)
    for k in range(0, A.shape[1], 64):
        a = ct.load_tile(A, offset=[i * 128, k], size=[128, 64])
        b = ct.load_tile(B, offset=[j * 64, k], size=[64, 64])
        acc = ct.matmul(a, b.T, acc)
    ct.store_tile(C, offset=[i * 128, j * 64], tile=acc)

# CHECK:       .target sm_100a
# CHECK-LABEL: .visible .entry fp6_fp4(
# CHECK:         tcgen05.alloc.cta_group::1.sync.aligned.shared::cta.b32 [%{{r[0-9]+}}], 64;
# CHECK:       $L_for_{{[0-9]+}}:
# CHECK:         // kind::f8f6f4 A e2m3 x B e2m1: operands copied from global memory
# CHECK:         // f6E2M3FN operand: 128 rows x 64 k -> smem + 0 (K-major, 16 k per 16 B, 12 B of data each, then padding)
# CHECK:         ld.global.u8
# CHECK:         bfi.b32 %[[W:r[0-9]+]], %{{r[0-9]+}}, %[[W]], 30, 2;
# CHECK:         st.shared.v2.b32 [%[[SA:r[0-9]+]]+0], {%{{r[0-9]+}}, %{{r[0-9]+}}};
# CHECK-NEXT:    st.shared.b32 [%[[SA]]+8], %{{r[0-9]+}};
# CHECK:         // f4E2M1FN operand: 64 rows x 64 k -> smem + 8192 (K-major, 16 k per 16 B, 8 B of data each, then padding)
# CHECK:         st.shared.v2.b32 [%{{r[0-9]+}}+8192], {%{{r[0-9]+}}, %{{r[0-9]+}}};
# CHECK-NOT:     st.shared.b32
# CHECK:         fence.proxy.async.shared::cta;
# CHECK:         // A smem descriptor Sm100SmemDescriptor<0x0000402000080000 start_addr=0 lbo=8 sbo=32 {{.*}} swizzle=NONE>
# CHECK:         or.b64 %[[AD:rd[0-9]+]], %{{rd[0-9]+}}, 0x0000402000080000;
# CHECK:         // B smem descriptor Sm100SmemDescriptor<0x0000402000080000 start_addr=0 lbo=8 sbo=32 {{.*}} swizzle=NONE>
# CHECK:         or.b64 %[[BD:rd[0-9]+]], %{{rd[0-9]+}}, 0x0000402000080000;
# CHECK:         // idesc Sm100InstrDescriptor<0x08101590 {{.*}} a_type=3 b_type=5 {{.*}} a_major=K b_major=K n_dim=8 m_dim=8
# CHECK:         tcgen05.mma.cta_group::1.kind::f8f6f4 [%[[D:r[0-9]+]]], %[[AD]], %[[BD]], 0x08101590, %p{{[0-9]+}};
# CHECK-NEXT:    add.s64 %[[AD2:rd[0-9]+]], %[[AD]], 16;
# CHECK-NEXT:    add.s64 %[[BD2:rd[0-9]+]], %[[BD]], 16;
# CHECK-NEXT:    tcgen05.mma.cta_group::1.kind::f8f6f4 [%[[D]]], %[[AD2]], %[[BD2]], 0x08101590, %p{{[0-9]+}};
# CHECK-NEXT:    tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64
# CHECK:       $L_endfor_{{[0-9]+}}:
# CHECK:         tcgen05.ld.sync.aligned.32x32b.x32.b32
