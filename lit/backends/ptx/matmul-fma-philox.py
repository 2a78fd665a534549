# RUN: tilec compile %s --target sm_90a --emit ptx --arg A=f32[?,?] --arg B=f32[?,?] --arg C=f32[?,?] --arg seed=i32 | filecheck %s
## An f32 matmul stages A and B in shared memory and accumulates with fma.rn.f32 (the
## CUDA-core path of `select_mma`); 2-D addresses are mad.wide.u32 row * dim1 + col;
## ct.dropout draws Philox4x32-10 with mul.hi.u32 by M0 = 0xD2511F53.
import tilec as ct


@ct.kernel
def mm(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor, seed: int):
    i = ct.tile_idx(0)
    a = ct.load_tile(A, offset=[i * 32, 0], size=[32, 16])
    b = ct.load_tile(B, offset=[0, 0], size=[16, 32])
    c = ct.dropout(a @ b, 0.5, seed=seed)
    ct.store_tile(C, offset=[i * 32, 0], tile=c)

# CHECK-LABEL: .visible .entry mm(
# CHECK:         mad.wide.u32 %{{rd[0-9]+}}, %{{r[0-9]+}}, %{{r[0-9]+}}, %{{rd[0-9]+}};
# CHECK:         bar.sync 0;
# CHECK:         ld.shared.f32 %[[A:f[0-9]+]], [%{{r[0-9]+}}+0];
# CHECK:         fma.rn.f32 %[[ACC:f[0-9]+]], %[[A]], %{{f[0-9]+}}, %[[ACC]];
# CHECK:         mul.hi.u32 %{{r[0-9]+}}, %{{r[0-9]+}}, 3528531795;
# CHECK:         cvt.rn.f32.u32
