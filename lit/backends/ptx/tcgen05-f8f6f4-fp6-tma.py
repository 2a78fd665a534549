# RUN: tilec compile %s --target sm_100a --emit ptx --arg A=float6_e2m3fn[?,?] --arg B=float4_e2m1fn[?,?] --arg C=f32[?,?] | filecheck %s
## Unscaled fp6 (e2m3) x fp4 (e2m1) on sm_100a, BK = 128, fed by TMA (backends/ptx/tcgen05_f8f6f4_tma.py).
## fp6 arguments hold one code per byte, so A comes as plain bytes (a UINT8 map, box 128 x 128) into
## the 128B-swizzled K-major stage; B (fp4, packed two per byte) through a 16U4_ALIGN16B map that
## writes the padded groups itself.  Warps 2..3 (threads 64..127) then pack every 16-byte chunk of
## A in place (16 codes -> 12 bytes: bfe 6 bits out of each byte, bfi at bit 6 i), fence the
## generic writes for the async proxy and arrive on ready[s] (init count 64 = one per packing
## thread); the MMA warp waits ready[s] before its 4 x K32 tcgen05.mma.  The swizzle moves whole
## 16-byte chunks, so each packed group stays where the MMA reads it.
## idesc 0x08101590: D f32, A e2m3 (3), B e2m1 (5), K-major, N 64, M 128.
import tilec as ct


@ct.kernel
def fp6_fp4_tma(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.zeros([128, 64], ct.float32)
    for k in range(0, A.shape[1], 128):
        a = ct.load_tile(A, offset=[i * 128, k], size=[128, 128])
        b = ct.load_tile(B, offset=[j * 64, k], size=[64, 128])
        acc = ct.matmul(a, b.T, acc)
    ct.store_tile(C, offset=[i * 128, j * 64], tile=acc)

# CHECK:       .shared .align 8 .b64 tc_ready0[[[S:[0-9]]]];
# CHECK-LABEL: .visible .entry fp6_fp4_tma(
# CHECK:         .param .align 64 .b8 p0_tma0[128],
# CHECK-NEXT:    .param .align 64 .b8 p1_tma0[128]
# CHECK:         mov.u32 %[[R:r[0-9]+]], tc_ready0;
# CHECK-NEXT:    mbarrier.init.shared::cta.b64 [%[[R]]+0], 64;
# CHECK:         @!%p{{[0-9]+}} bra $L_tc_direct_loop_[[N:[0-9]+]];
## producer: A as bytes, B as packed fp4, one expect_tx of the bytes read: 128 x 128 + 64 x 128 / 2
# CHECK:         mbarrier.arrive.expect_tx.shared::cta.b64 _, [%[[FULL:r[0-9]+]]], 20480;
# CHECK:         cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%[[ST:r[0-9]+]]+0], [%{{rd[0-9]+}}, {%{{r[0-9]+}}, %{{r[0-9]+}}}], [%[[FULL]]];
# CHECK:         cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%[[ST]]+16384], [%{{rd[0-9]+}}, {%{{r[0-9]+}}, %{{r[0-9]+}}}], [%[[FULL]]];
## packers: threads 64.., A's 16384 bytes, 64 threads x 16 bytes apart
# CHECK:         // fp6 operands at stage offsets [(0, 16384)]: warps 2.. pack 16 codes per 16 bytes in place
# CHECK-NEXT:    setp.ge.u32 %[[PK:p[0-9]+]], %r{{[0-9]+}}, 64;
# CHECK:         mbarrier.try_wait.parity.shared::cta.b64 %p{{[0-9]+}}, [%{{r[0-9]+}}], %{{r[0-9]+}};
# CHECK:       $L_tc_repack_{{[0-9]+}}:
# CHECK:         ld.shared.v4.b32 {%[[W0:r[0-9]+]], %{{r[0-9]+}}, %{{r[0-9]+}}, %{{r[0-9]+}}}, [%[[AT:r[0-9]+]]];
# CHECK:         bfe.u32 %[[C0:r[0-9]+]], %[[W0]], 0, 6;
# CHECK-NEXT:    bfi.b32 %[[O0:r[0-9]+]], %[[C0]], %[[O0]], 0, 6;
# CHECK-NEXT:    bfe.u32 %[[C1:r[0-9]+]], %[[W0]], 8, 6;
# CHECK-NEXT:    bfi.b32 %[[O0]], %[[C1]], %[[O0]], 6, 6;
# CHECK:         st.shared.v2.b32 [%[[AT]]], {%[[O0]], %{{r[0-9]+}}};
# CHECK-NEXT:    st.shared.b32 [%[[AT]]+8], %{{r[0-9]+}};
# CHECK-NEXT:    add.u32 %[[AT]], %[[AT]], 1024;
# CHECK:         fence.proxy.async.shared::cta;
# CHECK-NEXT:    mov.u32 %[[RD:r[0-9]+]], tc_ready0;
# CHECK-NEXT:    mad.lo.u32 %[[RD]], %{{r[0-9]+}}, 8, %[[RD]];
# CHECK-NEXT:    mbarrier.arrive.shared::cta.b64 _, [%[[RD]]];
## MMA warp: waits ready[s], then kind::f8f6f4 on the 128B-swizzled stage
# CHECK:         mov.u32 %[[RW:r[0-9]+]], tc_ready0;
# CHECK:         mbarrier.try_wait.parity.shared::cta.b64 %p{{[0-9]+}}, [%[[RW]]], %{{r[0-9]+}};
# CHECK:         or.b64 %[[AD:rd[0-9]+]], %{{rd[0-9]+}}, 0x4000404000010000;
# CHECK:         or.b64 %[[BD:rd[0-9]+]], %{{rd[0-9]+}}, 0x4000404000010000;
# CHECK:         tcgen05.mma.cta_group::1.kind::f8f6f4 [%{{r[0-9]+}}], %[[AD]], %[[BD]], 0x08101590, %p{{[0-9]+}};
# CHECK:         tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64
## the fallback: per-element copy
# CHECK:       $L_tc_direct_loop_[[N]]:
# CHECK:         ld.global.u8
# CHECK:       $L_tc_loop_done_{{[0-9]+}}:
