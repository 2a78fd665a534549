# RUN: tilec compile %s --target sm_100a --emit ptx --arg A=float4_e2m1fn[?,?] --arg B=float4_e2m1fn[?,?] --arg C=f32[?,?] | filecheck %s
## Unscaled fp4 x fp4 on sm_100a, BK = 128: the operands come by TMA (backends/ptx/tcgen05_f8f6f4_tma.py).
## Each tensor gets a tensor-map parameter of data type 16U4_ALIGN16B (launch role
## "16u4_align16b", box 128 x rows: boxDim[0] must be 128), which expands every 16 packed fp4 to
## 16 bytes of shared memory: a 1-byte-per-element, 128B-swizzled K-major image (SBO 8 x 128 B:
## descriptor 0x4000404000010000), K32 per MMA = +32 B (descriptor + 2).  The kernel first tests
## that both tensors are 32-byte aligned with K % 128 == 0 (the driver's rules for the packed
## type); if not it runs the same loop with the per-element copy (ld.global.u8 + bfi).
## Stage = A 128 x 128 + B 64 x 128 bytes of shared memory; the expect_tx count is what TMA reads,
## the packed bytes: (128 + 64) x 128 / 2 = 12288 (as DeepGEMM's sm100 fp8 x fp4 GEMM counts it).
## idesc 0x08101690: D f32, A e2m1 (5), B e2m1 (5), both K-major, N 64, M 128.
import tilec as ct


@ct.kernel
def fp4_tma(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.zeros([128, 64], ct.float32)
    for k in range(0, A.shape[1], 128):
        a = ct.load_tile(A, offset=[i * 128, k], size=[128, 128])
        b = ct.load_tile(B, offset=[j * 64, k], size=[64, 128])
        acc = ct.matmul(a, b.T, acc)
    ct.store_tile(C, offset=[i * 128, j * 64], tile=acc)

# CHECK:       .target sm_100a
# CHECK:       .shared .align 1024 .b8 tc_stages0[{{[0-9]+}}];
# CHECK-LABEL: .visible .entry fp4_tma(
# CHECK:         .param .u64 p0,
# CHECK:         .param .u32 p0_d1,
# CHECK:         .param .u64 p1,
# CHECK:         .param .u32 p1_d1,
# CHECK:         .param .align 64 .b8 p0_tma0[128],
# CHECK-NEXT:    .param .align 64 .b8 p1_tma0[128]
# CHECK:         ld.param.u64 %[[PA:rd[0-9]+]], [p0];
# CHECK:         ld.param.u32 %[[KA:r[0-9]+]], [p0_d1];
# CHECK:         ld.param.u64 %[[PB:rd[0-9]+]], [p1];
# CHECK:         ld.param.u32 %[[KB:r[0-9]+]], [p1_d1];
## the run-time test: both bases % 32 == 0, both K extents % 128 == 0
# CHECK:         and.b64 %{{rd[0-9]+}}, %{{rd[0-9]+}}, 31;
# CHECK:         and.b32 %{{r[0-9]+}}, %[[KA]], 127;
# CHECK:         and.b64 %{{rd[0-9]+}}, %{{rd[0-9]+}}, 31;
# CHECK:         and.b32 %{{r[0-9]+}}, %[[KB]], 127;
# CHECK:         @!%[[OK:p[0-9]+]] bra $L_tc_direct_loop_[[N:[0-9]+]];
# CHECK-NEXT:    // tcgen05 pipeline 0: {{[2-4]}} stages of 24576 B (A 128B-swizzled K-major, B 128B-swizzled K-major); TMA producer = warp 0, MMA issuer = warp 1
## producer (warp 0): one expect_tx per stage, one 128-element box per operand
# CHECK:         mbarrier.arrive.expect_tx.shared::cta.b64 _, [%[[FULL:r[0-9]+]]], 12288;
# CHECK:         mov.u64 %[[TA:rd[0-9]+]], p0_tma0;
# CHECK-NEXT:    cvta.param.u64 %[[TA]], %[[TA]];
# CHECK-NEXT:    cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%[[S:r[0-9]+]]+0], [%[[TA]], {%{{r[0-9]+}}, %{{r[0-9]+}}}], [%[[FULL]]];
# CHECK-NEXT:    mov.u64 %[[TB:rd[0-9]+]], p1_tma0;
# CHECK-NEXT:    cvta.param.u64 %[[TB]], %[[TB]];
# CHECK-NEXT:    cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%[[S]]+16384], [%[[TB]], {%{{r[0-9]+}}, %{{r[0-9]+}}}], [%[[FULL]]];
# CHECK-NOT:     ld.global.u8
## MMA issuer (warp 1): 4 x K32 kind::f8f6f4 on the swizzled stage, then commit -> empty[s]
# CHECK:         or.b64 %[[AD:rd[0-9]+]], %{{rd[0-9]+}}, 0x4000404000010000;
# CHECK:         or.b64 %[[BD:rd[0-9]+]], %{{rd[0-9]+}}, 0x4000404000010000;
# CHECK:         tcgen05.mma.cta_group::1.kind::f8f6f4 [%[[D:r[0-9]+]]], %[[AD]], %[[BD]], 0x08101690, %p{{[0-9]+}};
# CHECK-NEXT:    add.s64 %[[A1:rd[0-9]+]], %[[AD]], 2;
# CHECK-NEXT:    add.s64 %[[B1:rd[0-9]+]], %[[BD]], 2;
# CHECK-NEXT:    tcgen05.mma.cta_group::1.kind::f8f6f4 [%[[D]]], %[[A1]], %[[B1]], 0x08101690, %p{{[0-9]+}};
# CHECK:         tcgen05.mma.cta_group::1.kind::f8f6f4 [%[[D]]], %{{rd[0-9]+}}, %{{rd[0-9]+}}, 0x08101690, %p{{[0-9]+}};
# CHECK:         tcgen05.mma.cta_group::1.kind::f8f6f4 [%[[D]]], %{{rd[0-9]+}}, %{{rd[0-9]+}}, 0x08101690, %p{{[0-9]+}};
# CHECK-NEXT:    mov.u32 %{{r[0-9]+}}, tc_empty0;
# CHECK:         tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64
# CHECK:         bra $L_tc_loop_done_{{[0-9]+}};
## the fallback: the per-element copy
# CHECK-NEXT:  $L_tc_direct_loop_[[N]]:
# CHECK:         // kind::f8f6f4 A e2m1 x B e2m1: operands copied from global memory
# CHECK:         ld.global.u8
# CHECK:         tcgen05.mma.cta_group::1.kind::f8f6f4
# CHECK:       $L_tc_loop_done_{{[0-9]+}}:
# CHECK:         tcgen05.ld.sync.aligned.32x32b
