# RUN: python %s | filecheck %s
## sm_90a W4A16 (backends/ptx/lower_w4a16_tma.py): the packed FP4 weights, their e8m0 scales and
## (with two n8 token tiles) the activations of a CTA arrive by TMA, one stage per KS = 4 chunks:
## 4 weight boxes [64 rows x 64 B], one scale box 16 B wider than the stage's 16 scale bytes (its
## start aligned down to 16 bytes), 4 x 2 activation boxes [16 x 64 halves] (128-byte swizzle).
## Thread 0 issues a stage on its `full` mbarrier; every warp waits, reads its rows from shared
## memory, and its lane 0 releases the stage on `empty` (16 arrivals).  An entry test of the
## maps' alignment rules picks between that loop and the per-thread cp.async ring.
import tilec as ct
from tilec import dtypes as dt
from tilec.driver import CompileOptions, compile_kernel
from tilec.frontend.tracer import ConstantSpec, TensorSpec


@ct.kernel
def w4a16(X: ct.Tensor, WQ: ct.Tensor, WS: ct.Tensor, Y: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int],
          BK: ct.Constant[int], BLOCK: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.zeros([BM, BN], ct.float32)
    for k in range(X.shape[1] // BK):
        x = ct.load_tile(X, offset=[i * BM, k * BK], size=[BM, BK])
        wq = ct.load_tile(WQ, offset=[j * BN, k * BK], size=[BN, BK])
        ws = ct.load_tile(WS, offset=[j * BN, k * (BK // BLOCK)], size=[BN, BK // BLOCK])
        acc = ct.matmul(x, ct.dequantize(wq, ws, dtype=x.dtype).T, acc)
    ct.store_tile(Y, offset=[i * BM, j * BN], tile=acc)


t = lambda name: TensorSpec(dt.lookup(name), (None, None))  # noqa: E731
art = compile_kernel(w4a16, [t("f16"), t("f4E2M1FN"), t("f8E8M0FNU"), t("f32"), ConstantSpec(16), ConstantSpec(64),
                             ConstantSpec(128), ConstantSpec(32)], "sm_90a", CompileOptions(num_warps=16, num_stages=4))
print(art.gpu.ptx)

# CHECK: // tilec: kernel w4a16 for sm_90a, 16 warps
# CHECK:       .param .align 64 .b8 p1_tma0[128],
# CHECK-NEXT:  .param .align 64 .b8 p2_tma0[128],
# CHECK-NEXT:  .param .align 64 .b8 p0_tma0[128]
# CHECK:         and.b32 %{{r[0-9]+}}, %{{r[0-9]+}}, 15;
# CHECK:         rem.u32 %{{r[0-9]+}}, %{{r[0-9]+}}, 32;
# CHECK:         rem.u32 %{{r[0-9]+}}, %{{r[0-9]+}}, 16;
# CHECK:         rem.u32 %{{r[0-9]+}}, %{{r[0-9]+}}, 8;
# CHECK:         @!%[[OK:p[0-9]+]] bra $L_w4a16_cp_async_[[CP:[0-9]+]];
# CHECK:         // w4a16.mma_loop (sm_90a TMA): 4 stages of 4 x [64 x 64 B] weights + [64 x 32 B] scales + 8 x [16 x 64] activations, 34816 bytes each
# CHECK:         @%[[LEAD:p[0-9]+]] mbarrier.init.shared::cta.b64 [%[[BARS:r[0-9]+]]+0], 1;
# CHECK-NEXT:    @%[[LEAD]] mbarrier.init.shared::cta.b64 [%[[BARS]]+32], 16;
# CHECK:         bar.sync 0;
# CHECK:       $L_w4a16_tma_prologue_{{[0-9]+}}:
# CHECK:         mbarrier.arrive.expect_tx.shared::cta.b64 _, [%[[FULL:r[0-9]+]]], 34816;
# CHECK-NEXT:    cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%{{r[0-9]+}}+0], [%[[W:rd[0-9]+]], {%{{r[0-9]+}}, %{{r[0-9]+}}}], [%[[FULL]]];
# CHECK-COUNT-3: cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%{{r[0-9]+}}+{{[0-9]+}}], [%[[W]], {%{{r[0-9]+}}, %{{r[0-9]+}}}], [%[[FULL]]];
# CHECK-NEXT:    cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%{{r[0-9]+}}+0], [%[[S:rd[0-9]+]], {%{{r[0-9]+}}, %{{r[0-9]+}}}], [%[[FULL]]];
# CHECK-NEXT:    cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%{{r[0-9]+}}+0], [%[[X:rd[0-9]+]], {%{{r[0-9]+}}, %{{r[0-9]+}}}], [%[[FULL]]];
# CHECK-COUNT-7: cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%{{r[0-9]+}}+{{[0-9]+}}], [%[[X]],
# CHECK:       $L_w4a16_tma_loop_{{[0-9]+}}:
# CHECK:         mbarrier.try_wait.parity.shared::cta.b64 %{{p[0-9]+}}, [%{{r[0-9]+}}], %{{r[0-9]+}};
# CHECK:         mbarrier.arrive.expect_tx.shared::cta.b64 _, [%{{r[0-9]+}}], 34816;
# CHECK:         mbarrier.try_wait.parity.shared::cta.b64 %{{p[0-9]+}}, [%[[B:r[0-9]+]]], %{{r[0-9]+}};
# CHECK:         ld.shared.u8
# CHECK:         ld.shared.v4.b32
# CHECK:         bar.warp.sync -1;
# CHECK-NEXT:    @%{{p[0-9]+}} mbarrier.arrive.shared::cta.b64 _, [%[[B]]+32];
# CHECK:         mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32
# CHECK:       $L_w4a16_tma_done_{{[0-9]+}}:
# CHECK:         bra.uni $L_w4a16_join_{{[0-9]+}};
# CHECK-NEXT:  $L_w4a16_cp_async_[[CP]]:
# CHECK:         cp.async.cg.shared.global
# CHECK:       $L_w4a16_join_{{[0-9]+}}:
