# RUN: tilec compile %s --target sm_100 --emit ptx --arg A=f16[?,?] --arg B=f16[?,?] --arg C=f32[?,?] | filecheck %s
# RUN: tilec compile %s --target sm_100a --emit ptx --arg A=bf16[?,?] --arg B=bf16[?,?] --arg C=f32[?,?] | filecheck %s --check-prefix=BF16
# RUN: tilec compile %s --target sm_100a --emit ptx --arg A=f32[?,?] --arg B=f32[?,?] --arg C=f32[?,?] | filecheck %s --check-prefix=TF32
## On sm_100a a K-loop matmul runs on the 5th-generation tensor cores: warp 0 allocates
## 64 TMEM columns once, the loop-carried accumulator is zeroed in TMEM before the loop and
## stays there (no tcgen05.ld inside the loop), A and B^T are staged K-major without swizzle
## (LBO = 128 B, SBO = 512 B: descriptor 0x0000402000080000), thread 0 issues two
## M128 N64 K16 MMAs (idesc 0x08100010, +16 = 256 B per K step) and commits them to the
## mbarrier that every thread waits on; after the loop each warp reads its TMEM lane quarter.
import tilec as ct


@ct.kernel
def mm(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.zeros([128, 64], ct.float32)
    for k in range(0, A.shape[1], 32):
        a = ct.load_tile(A, offset=[i * 128, k], size=[128, 32])
        b = ct.load_tile(B, offset=[k, j * 64], size=[32, 64])
        acc += a @ b
    ct.store_tile(C, offset=[i * 128, j * 64], tile=acc)

# CHECK:       .version 8.6
# CHECK-NEXT:  .target sm_100a
# CHECK:       .shared .align 8 .b64 tc_mbar;
# CHECK-LABEL: .visible .entry mm(
# CHECK:         mov.u32 %[[SLOT:r[0-9]+]], tc_tmem_slot;
# CHECK:         tcgen05.alloc.cta_group::1.sync.aligned.shared::cta.b32 [%[[SLOT]]], 64;
# CHECK-NEXT:    tcgen05.relinquish_alloc_permit.cta_group::1.sync.aligned;
# CHECK:         mbarrier.init.shared::cta.b64 [%[[MBAR:r[0-9]+]]], 1;
# CHECK:         tcgen05.fence::before_thread_sync;
# CHECK-NEXT:    bar.sync 0;
# CHECK-NEXT:    tcgen05.fence::after_thread_sync;
# CHECK-NEXT:    ld.shared.u32 %[[TADDR:r[0-9]+]], [%[[SLOT]]];
# CHECK:         tcgen05.st.sync.aligned.32x32b.x32.b32 [%[[TQ:r[0-9]+]]+0], {%[[ZERO:f[0-9]+]], %[[ZERO]],
# CHECK:         tcgen05.st.sync.aligned.32x32b.x32.b32 [%[[TQ]]+32],
# CHECK-NEXT:    tcgen05.wait::st.sync.aligned;
# CHECK:       $L_for_{{[0-9]+}}:
# CHECK:         cvt.rn.f16x2.f32 %[[H:r[0-9]+]], %{{f[0-9]+}}, %{{f[0-9]+}};
# CHECK:         st.shared.v2.b32 [%{{r[0-9]+}}+0], {%[[H]], %{{r[0-9]+}}};
# CHECK:         cvt.rn.f16.f32 %[[BH:h[0-9]+]], %{{f[0-9]+}};
# CHECK-NEXT:    st.shared.b16 [%{{r[0-9]+}}+8192], %[[BH]];
# CHECK:         fence.proxy.async.shared::cta;
# CHECK-NEXT:    tcgen05.fence::before_thread_sync;
# CHECK-NEXT:    bar.sync 0;
# CHECK-NEXT:    @%{{p[0-9]+}} bra $L_tc_issued_[[ISSUED:[0-9]+]];
# CHECK-NEXT:    tcgen05.fence::after_thread_sync;
# CHECK:         // A smem descriptor Sm100SmemDescriptor<0x0000402000080000 start_addr=0 lbo=8 sbo=32 {{.*}} version=1 {{.*}} swizzle=NONE>
# CHECK:         or.b64 %[[ADESC:rd[0-9]+]], %[[ADESC]], 0x0000402000080000;
# CHECK:         or.b64 %[[BDESC:rd[0-9]+]], %[[BDESC]], 0x0000402000080000;
# CHECK-NEXT:    // idesc Sm100InstrDescriptor<0x08100010 {{.*}} d_type=1 a_type=0 b_type=0 {{.*}} a_major=K b_major=K n_dim=8 m_dim=8
# CHECK-NEXT:    add.u32 %[[D:r[0-9]+]], %[[TADDR]], 0;
# CHECK-NEXT:    tcgen05.mma.cta_group::1.kind::f16 [%[[D]]], %[[ADESC]], %[[BDESC]], 0x08100010, %[[ENABLE:p[0-9]+]];
# CHECK-NEXT:    add.s64 %[[A1:rd[0-9]+]], %[[ADESC]], 16;
# CHECK-NEXT:    add.s64 %[[B1:rd[0-9]+]], %[[BDESC]], 16;
# CHECK-NEXT:    tcgen05.mma.cta_group::1.kind::f16 [%[[D]]], %[[A1]], %[[B1]], 0x08100010, %[[ENABLE]];
# CHECK-NEXT:    tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64 [%[[MBAR]]];
# CHECK-NEXT:  $L_tc_issued_[[ISSUED]]:
# CHECK-NEXT:  $L_tc_wait_[[WAIT:[0-9]+]]:
# CHECK-NEXT:    mbarrier.try_wait.parity.shared::cta.b64 %[[DONE:p[0-9]+]], [%[[MBAR]]], %[[PHASE:r[0-9]+]];
# CHECK-NEXT:    @!%[[DONE]] bra $L_tc_wait_[[WAIT]];
# CHECK-NEXT:    bar.warp.sync -1;
# CHECK-NEXT:    xor.b32 %[[PHASE]], %[[PHASE]], 1;
# CHECK-NEXT:    tcgen05.fence::after_thread_sync;
# CHECK-NOT:     tcgen05.ld
# CHECK:       $L_endfor_{{[0-9]+}}:
# CHECK:         tcgen05.ld.sync.aligned.32x32b.x32.b32 {{{.*}}}, [%[[TQ]]+0];
# CHECK-NEXT:    tcgen05.wait::ld.sync.aligned;
# CHECK:         tcgen05.ld.sync.aligned.32x32b.x32.b32 {{{.*}}}, [%[[TQ]]+32];
# CHECK:         tcgen05.fence::before_thread_sync;
# CHECK-NEXT:    bar.sync 0;
# CHECK:         tcgen05.dealloc.cta_group::1.sync.aligned.b32 %[[TADDR]], 64;
# CHECK-NEXT:  $L_tc_dealloc_done_{{[0-9]+}}:
# CHECK-NEXT:    ret;

## bf16: A/B type code 1 in the instruction descriptor (bits 7..12).
# BF16:          cvt.rn.bf16x2.f32
# BF16:          tcgen05.mma.cta_group::1.kind::f16 [%{{r[0-9]+}}], %{{rd[0-9]+}}, %{{rd[0-9]+}}, 0x08100490,

## f32 inputs: 3xTF32.  hi = x & 0xFFFFE000 (the bits kind::tf32 reads), lo = x - hi; per
## K8 step hi*hi + hi*lo + lo*hi.  32-byte rows of 4-byte elements: SBO = 1024 B.
# TF32:          and.b32 %{{r[0-9]+}}, %{{r[0-9]+}}, 0xFFFFE000;
# TF32:          sub.rn.f32
# TF32:          or.b64 %[[AHI:rd[0-9]+]], %[[AHI]], 0x0000404000080000;
# TF32:          or.b64 %[[ALO:rd[0-9]+]], %[[ALO]], 0x0000404000080000;
# TF32:          or.b64 %[[BHI:rd[0-9]+]], %[[BHI]], 0x0000404000080000;
# TF32:          or.b64 %[[BLO:rd[0-9]+]], %[[BLO]], 0x0000404000080000;
# TF32-NEXT:     // idesc Sm100InstrDescriptor<0x08100910 {{.*}} a_type=2 b_type=2
# TF32:          tcgen05.mma.cta_group::1.kind::tf32 [%[[D:r[0-9]+]]], %[[AHI]], %[[BHI]], 0x08100910,
# TF32-NEXT:     tcgen05.mma.cta_group::1.kind::tf32 [%[[D]]], %[[AHI]], %[[BLO]], 0x08100910,
# TF32-NEXT:     tcgen05.mma.cta_group::1.kind::tf32 [%[[D]]], %[[ALO]], %[[BHI]], 0x08100910,
# TF32-COUNT-9:  tcgen05.mma.cta_group::1.kind::tf32
# TF32-NEXT:     tcgen05.commit
