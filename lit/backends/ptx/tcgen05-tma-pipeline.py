# RUN: python %s | filecheck %s
## sm_100a: the canonical K loop fed by TMA (backends/ptx/tcgen05_pipeline.py).  A and B are
## 16-byte aligned (TensorSpec.div16), so their tiles come through tensor-map parameters
## into stage buffers (A 128B-swizzled K-major; B [K, N] 128B-swizzled MN-major, idesc bit 16,
## in two 64-column panels 64 x 128 B = 8192 B apart: LBO 512); warp 0 produces (wait
## empty[s], expect_tx full[s], TMA), warp 1 issues the MMAs (wait full[s], tcgen05.mma,
## commit -> empty[s]; one elected lane issues) and finally commits the accumulator, which
## every thread waits for before tcgen05.ld.
import tilec as ct
from tilec import dtypes as dt
from tilec.driver import compile_kernel
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
art = compile_kernel(mm, [t, t, TensorSpec(dt.float32, (None, None), div16=True), ConstantSpec(128),
                          ConstantSpec(128), ConstantSpec(64)], "sm_100a")
print(art.gpu.ptx)

# CHECK:       .extern .shared .align 16 .b8 smem[];
# CHECK-NEXT:  .shared .align 1024 .b8 tc_stages0[{{[0-9]+}}];
# CHECK-NEXT:  .shared .align 8 .b64 tc_mbar;
# CHECK-NEXT:  .shared .align 4 .b32 tc_tmem_slot;
# CHECK-NEXT:  .shared .align 8 .b64 tc_full0[{{[2-4]}}];
# CHECK-NEXT:  .shared .align 8 .b64 tc_empty0[{{[2-4]}}];
# CHECK-LABEL: .visible .entry mm(
# CHECK:         .param .align 64 .b8 p0_tma0[128],
# CHECK-NEXT:    .param .align 64 .b8 p1_tma0[128]
# CHECK:         tcgen05.alloc.cta_group::1.sync.aligned.shared::cta.b32 [%{{r[0-9]+}}], 128;
# CHECK:         mov.u32 %[[FULL:r[0-9]+]], tc_full0;
# CHECK-NEXT:    mbarrier.init.shared::cta.b64 [%[[FULL]]+0], 1;
# CHECK:         mov.u32 %[[EMPTY:r[0-9]+]], tc_empty0;
# CHECK-NEXT:    mbarrier.init.shared::cta.b64 [%[[EMPTY]]+0], 1;
# CHECK:         fence.mbarrier_init.release.cluster;
# CHECK:         tcgen05.st.sync.aligned.32x32b.x32.b32
# CHECK:         // tcgen05 pipeline 0: {{[2-4]}} stages of 32768 B (A 128B-swizzled K-major, B 128B-swizzled MN-major)
# CHECK-NEXT:    // A smem descriptor Sm100SmemDescriptor<0x4000404000010000 {{.*}} sbo=64 {{.*}} swizzle=SW128>
# CHECK-NEXT:    // B smem descriptor Sm100SmemDescriptor<0x4000404002000000 start_addr=0 lbo=512 sbo=64 {{.*}} swizzle=SW128>
# CHECK-NEXT:    // idesc Sm100InstrDescriptor<0x08210010 {{.*}} a_major=K b_major=MN n_dim=16 m_dim=8
# CHECK:         tcgen05.fence::before_thread_sync;
# CHECK-NEXT:    bar.sync 0;
## warp 0: producer; the whole warp waits for a free stage, one elected lane arms and loads it
# CHECK-NEXT:    shr.u32 %[[W0:r[0-9]+]], %r0, 5;
# CHECK-NEXT:    setp.eq.u32 %[[PRODUCER:p[0-9]+]], %[[W0]], 0;
# CHECK-NEXT:    @!%[[PRODUCER]] bra $L_tc_role_done_[[PDONE:[0-9]+]];
# CHECK:         mov.u32 %{{r[0-9]+}}, tc_empty0;
# CHECK:         mbarrier.try_wait.parity.shared::cta.b64
# CHECK:         mov.u32 %[[F:r[0-9]+]], tc_full0;
# CHECK:         elect.sync %{{r[0-9]+}}|%[[LEAD:p[0-9]+]], -1;
# CHECK-NEXT:    @!%[[LEAD]] bra $L_tc_elect_{{[0-9]+}};
# CHECK-NEXT:    mbarrier.arrive.expect_tx.shared::cta.b64 _, [%[[F]]], 32768;
# CHECK:         cvta.param.u64 %[[TA:rd[0-9]+]], %[[TA]];
# CHECK-NEXT:    cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%[[STAGE:r[0-9]+]]+0], [%[[TA]], {%{{r[0-9]+}}, %{{r[0-9]+}}}], [%[[F]]];
# CHECK:         cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%[[STAGE]]+16384], [%[[TB:rd[0-9]+]], {%[[N0:r[0-9]+]], %{{r[0-9]+}}}], [%[[F]]];
# CHECK-NEXT:    add.s32 %[[N1:r[0-9]+]], %[[N0]], 64;
# CHECK-NEXT:    cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%[[STAGE]]+24576], [%[[TB]], {%[[N1]], %{{r[0-9]+}}}], [%[[F]]];
# CHECK:       $L_tc_role_done_[[PDONE]]:
## warp 1: MMA issuer; the whole warp waits for a full stage, one elected lane issues and commits
# CHECK:         setp.eq.u32 %[[ISSUER:p[0-9]+]], %{{r[0-9]+}}, 1;
# CHECK:         @!%[[ISSUER]] bra $L_tc_role_done_[[IDONE:[0-9]+]];
# CHECK:         mov.u32 %{{r[0-9]+}}, tc_full0;
# CHECK:         mbarrier.try_wait.parity.shared::cta.b64
# CHECK:         tcgen05.fence::after_thread_sync;
# CHECK-NEXT:    elect.sync
# CHECK:         or.b64 %[[ADESC:rd[0-9]+]], %[[ADESC]], 0x4000404000010000;
# CHECK:         or.b64 %[[BDESC:rd[0-9]+]], %[[BDESC]], 0x4000404002000000;
# CHECK:         tcgen05.mma.cta_group::1.kind::f16 [%[[D:r[0-9]+]]], %[[ADESC]], %[[BDESC]], 0x08210010, %{{p[0-9]+}};
## K16 steps: A +32 B inside its 128-byte rows (+2), B +16 rows of 128 B (+128)
# CHECK-NEXT:    add.s64 %[[A1:rd[0-9]+]], %[[ADESC]], 2;
# CHECK-NEXT:    add.s64 %[[B1:rd[0-9]+]], %[[BDESC]], 128;
# CHECK-NEXT:    tcgen05.mma.cta_group::1.kind::f16 [%[[D]]], %[[A1]], %[[B1]], 0x08210010,
# CHECK-COUNT-2: tcgen05.mma.cta_group::1.kind::f16 [%[[D]]]
# CHECK:         mov.u32 %[[E:r[0-9]+]], tc_empty0;
# CHECK:         tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64 [%[[E]]];
# CHECK:       $L_tc_role_endfor_{{[0-9]+}}:
# CHECK-NEXT:    elect.sync
# CHECK-NEXT:    @!%{{p[0-9]+}} bra $L_tc_elect_{{[0-9]+}};
# CHECK-NEXT:    tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64 [%[[ACC:r[0-9]+]]];
# CHECK:       $L_tc_role_done_[[IDONE]]:
## every thread: wait for the accumulator, reconverge, read TMEM
# CHECK-NEXT:  $L_tc_wait_{{[0-9]+}}:
# CHECK-NEXT:    mbarrier.try_wait.parity.shared::cta.b64 %{{p[0-9]+}}, [%[[ACC]]],
# CHECK:         bar.warp.sync -1;
# CHECK:         tcgen05.ld.sync.aligned.32x32b.x32.b32
