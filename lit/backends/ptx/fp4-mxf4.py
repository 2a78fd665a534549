# RUN: tilec compile %s --target sm_100a --emit ptx --arg A=float4_e2m1fn[?,?] --arg SA=float8_e8m0fnu[?,?] --arg B=float4_e2m1fn[?,?] --arg SB=float8_e8m0fnu[?,?] --arg C=f32[?,?] | filecheck %s
## MXFP4 on sm_100a: a block-scaled K-loop matmul of packed e2m1 tiles with ue8m0 scales (one
## per 32 elements of K) runs on tcgen05 kind::mxf4 (K = 64 per MMA).  The packed bytes and
## the scale bytes are staged into shared memory as they are (A/B K-major, no swizzle: LBO =
## 128 B, SBO = 512 B for 64 bytes of K per row), thread 0 copies the scale factors into TMEM
## (tcgen05.cp 32x128b.warpx4 of 512-byte blocks, descriptor 0x0000400800000000 or-ed with the
## address) and issues two MMAs per K tile: byte ids 0 (idesc 0x08900480) and 2 (0x489004A0).
import tilec as ct


@ct.kernel
def mxfp4(A: ct.Tensor, SA: ct.Tensor, B: ct.Tensor, SB: ct.Tensor, C: ct.Tensor):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.zeros([128, 64], ct.float32)
    for k in range(A.shape[1] // 128):
        a = ct.load_tile(A, offset=[i * 128, k * 128], size=[128, 128])
        b = ct.load_tile(B, offset=[j * 64, k * 128], size=[64, 128])
        sa = ct.load_tile(SA, offset=[i * 128, k * 4], size=[128, 4], padding=1.0)
        sb = ct.load_tile(SB, offset=[j * 64, k * 4], size=[64, 4], padding=1.0)
        acc = ct.matmul(a, b.T, acc, a_scale=sa, b_scale=sb)
    ct.store_tile(C, offset=[i * 128, j * 64], tile=acc)

# CHECK:       .target sm_100a
# CHECK-LABEL: .visible .entry mxfp4(
# CHECK:         tcgen05.alloc.cta_group::1.sync.aligned.shared::cta.b32 [%{{r[0-9]+}}], 128;
# CHECK:       $L_for_{{[0-9]+}}:
# CHECK:         ld.global.u8
# CHECK:         st.shared.u8
# CHECK:         fence.proxy.async.shared::cta;
# CHECK:         tcgen05.fence::after_thread_sync;
# CHECK:         or.b64 %[[SFD:rd[0-9]+]], %{{rd[0-9]+}}, 0x0000400800000000;
# CHECK:         tcgen05.cp.cta_group::1.32x128b.warpx4 [%[[SFA:r[0-9]+]]], %[[SFD]];
# CHECK:         tcgen05.cp.cta_group::1.32x128b.warpx4 [%[[SFB:r[0-9]+]]], %{{rd[0-9]+}};
# CHECK:         or.b64 %{{rd[0-9]+}}, %{{rd[0-9]+}}, 0x0000402000080000;
# CHECK:         tcgen05.mma.cta_group::1.kind::mxf4.block_scale.scale_vec::2X [%[[D:r[0-9]+]]], %{{rd[0-9]+}}, %{{rd[0-9]+}}, 0x08900480, [%[[SFA]]], [%[[SFB]]], %p{{[0-9]+}};
# CHECK:         tcgen05.mma.cta_group::1.kind::mxf4.block_scale.scale_vec::2X [%[[D]]], %{{rd[0-9]+}}, %{{rd[0-9]+}}, 0x489004A0, [%[[SFA]]], [%[[SFB]]], %p{{[0-9]+}};
# CHECK-NEXT:    tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64
# CHECK:       $L_endfor_{{[0-9]+}}:
# CHECK:         tcgen05.ld.sync.aligned.32x32b.x32.b32
