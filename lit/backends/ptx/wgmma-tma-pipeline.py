# RUN: python %s | filecheck %s
## sm_90a: the canonical K loop on wgmma fed by TMA (tile-select-mma, tile-promote-smem,
## tile-async-copy, lower_wgmma.py).  A and B are 16-byte aligned (TensorSpec.div16, which the
## launch computes), so each operand tile comes through a tensor-map parameter; B is [K, N]
## row-major, read MN-major by wgmma (transpose-b = 1); the loop keeps one wgmma group in
## flight; the epilogue packs f16 pairs into a 128B-swizzled staging tile that TMA stores.
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
art = compile_kernel(mm, [t, t, t, ConstantSpec(128), ConstantSpec(256), ConstantSpec(64)], "sm_90a",
                     CompileOptions(num_stages=3))
print(art.gpu.ptx)

# CHECK: // tilec: kernel mm for sm_90a, 8 warps
# CHECK-LABEL: .visible .entry mm(
# CHECK:         .param .align 64 .b8 p0_tma0[128],
# CHECK-NEXT:    .param .align 64 .b8 p1_tma0[128],
# CHECK-NEXT:    .param .align 64 .b8 p2_tma0[128]
# CHECK:         mbarrier.init.shared::cta.b64 [%[[BASE:r[0-9]+]]+{{[0-9]+}}], 1;
# CHECK:         mbarrier.init.shared::cta.b64 [%[[BASE]]+{{[0-9]+}}], 2;
# CHECK:         fence.mbarrier_init.release.cluster;
# CHECK:         mbarrier.try_wait.parity.shared::cta.b64
# CHECK:         mbarrier.arrive.expect_tx.shared::cta.b64 _, [%{{r[0-9]+}}], 49152;
# CHECK:         cvta.param.u64 %[[TA:rd[0-9]+]], %[[TA]];
# CHECK:         cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%{{r[0-9]+}}+0], [%[[TA]], {%{{r[0-9]+}}, %{{r[0-9]+}}}], [%{{r[0-9]+}}];
# CHECK:         cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%{{r[0-9]+}}+24576], [%{{rd[0-9]+}}, {%{{r[0-9]+}}, %{{r[0-9]+}}}], [%{{r[0-9]+}}];
# CHECK:         wgmma.fence.sync.aligned;
# CHECK:         or.b64 %{{rd[0-9]+}}, %{{rd[0-9]+}}, 0x4000004000010000;
# CHECK:         or.b64 %{{rd[0-9]+}}, %{{rd[0-9]+}}, 0x4000004002000000;
# CHECK:         wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 {%[[D0:f[0-9]+]], {{.*}}}, %{{rd[0-9]+}}, %{{rd[0-9]+}}, %{{p[0-9]+}}, 1, 1, 0, 1;
# CHECK-COUNT-3: wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 {%[[D0]], {{.*}}}, {{.*}}, 1, 1, 0, 1;
# CHECK-NEXT:    wgmma.commit_group.sync.aligned;
# CHECK-NEXT:    wgmma.wait_group.sync.aligned 1;
# CHECK:         mbarrier.arrive.shared::cta.b64 _, [%{{r[0-9]+}}];
# CHECK:         wgmma.wait_group.sync.aligned 0;
# CHECK:         cvt.rn.f16x2.f32 %[[H:r[0-9]+]], %{{f[0-9]+}}, %[[D0]];
# CHECK-NEXT:    st.shared.b32 [%{{r[0-9]+}}+0], %[[H]];
# CHECK:         fence.proxy.async.shared::cta;
# CHECK-NEXT:    bar.sync 0;
# CHECK:         cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%{{rd[0-9]+}}, {%{{r[0-9]+}}, %{{r[0-9]+}}}], [%{{r[0-9]+}}+0];
# CHECK-COUNT-3: cp.async.bulk.tensor.2d.global.shared::cta.bulk_group
# CHECK-NEXT:    cp.async.bulk.commit_group;
# CHECK-NEXT:    cp.async.bulk.wait_group.read 0;
