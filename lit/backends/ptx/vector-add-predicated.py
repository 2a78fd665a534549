# RUN: tilec compile %s --target sm_90a --emit ptx --arg X=f32[?] --arg Y=f32[?] --arg Z=f32[?] | filecheck %s
# RUN: tilec compile %s --target sm_100a --emit ptx --arg X=f32[?] --arg Y=f32[?] --arg Z=f32[?] | filecheck %s --check-prefix=SM100
## A ragged 1-D add: each tensor is a u64 pointer plus one u32 dim; every element's load
## and store is predicated on `offset + index < dim` (unsigned), addresses are u64.
## 256 elements in chunks of 4 over 128 threads: threads >= 64 hold no element.
import tilec as ct


@ct.kernel
def vadd(X: ct.Tensor, Y: ct.Tensor, Z: ct.Tensor):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * 256], size=[256])
    y = ct.load_tile(Y, offset=[i * 256], size=[256])
    ct.store_tile(Z, offset=[i * 256], tile=x + y)

# CHECK:       .version 8.0
# CHECK-NEXT:  .target sm_90a
# CHECK-LABEL: .visible .entry vadd(
# CHECK-NEXT:    .param .u64 p0,
# CHECK-NEXT:    .param .u32 p0_d0,
# CHECK:       .maxntid 128, 1, 1
# CHECK:         mov.u32 %[[CTA:r[0-9]+]], %ctaid.x;
# CHECK:         setp.lt.u32 %[[INB:p[0-9]+]], %[[IDX:r[0-9]+]], %{{r[0-9]+}};
# CHECK-NEXT:    cvt.u64.u32 %[[LIN:rd[0-9]+]], %[[IDX]];
# CHECK-NEXT:    mad.lo.u64 %[[ADDR:rd[0-9]+]], %[[LIN]], 4, %{{rd[0-9]+}};
# CHECK-NEXT:    setp.lt.u32 %[[OWN:p[0-9]+]], %{{r[0-9]+}}, 64;
# CHECK-NEXT:    and.pred %[[P:p[0-9]+]], %[[OWN]], %[[INB]];
# CHECK-NEXT:    mov.f32 %[[X:f[0-9]+]], 0f00000000;
# CHECK-NEXT:    @%[[P]] ld.global.f32 %[[X]], [%[[ADDR]]];
# CHECK:         add.rn.f32 %[[SUM:f[0-9]+]], %[[X]], %{{f[0-9]+}};
# CHECK:         @%{{p[0-9]+}} st.global.f32 [%{{rd[0-9]+}}], %[[SUM]];

# SM100:       .version 8.6
# SM100-NEXT:  .target sm_100a
