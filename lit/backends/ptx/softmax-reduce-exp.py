# RUN: tilec compile %s --target sm_90a --emit ptx --arg X=f16[?,?] --arg Y=f16[?,?] | filecheck %s
## Row softmax: f16 loads padded with -inf (0xFC00 = 64512); a 128-wide row lives in one
## warp, so the row max and sum are in-register folds then shfl.sync.bfly butterflies (no
## shared memory, no bar.sync); exp(x - max) is ex2.approx of fma(x, log2 e, -max log2 e)
## (one multiply per row); the division by the
## shared row sum is one rcp.rn per row and a mul + residual fma per element; f16 results
## are rounded with cvt.rn.f16.f32 before the 16-bit store (scalar: the CLI's tensors are
## not known 16-byte aligned).
import tilec as ct


@ct.kernel
def softmax(X: ct.Tensor, Y: ct.Tensor):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * 2, 0], size=[2, 128], padding=float("-inf")).astype(ct.float32)
    e = ct.exp(x - ct.max(x, axis=1, keepdims=True))
    ct.store_tile(Y, offset=[i * 2, 0], tile=e / ct.sum(e, axis=1, keepdims=True))

# CHECK:       .extern .shared .align 16 .b8 smem[];
# CHECK-LABEL: .visible .entry softmax(
# CHECK:         mov.b16 %[[PAD:h[0-9]+]], 64512;
# CHECK-NEXT:    @%{{p[0-9]+}} ld.global.b16 %[[PAD]], [%{{rd[0-9]+}}];
# CHECK-NEXT:    cvt.f32.f16 %{{f[0-9]+}}, %[[PAD]];
# CHECK-NOT:     bar.sync
# CHECK:         max.NaN.f32 %[[M:f[0-9]+]], %[[M]], %{{f[0-9]+}};
# CHECK:         shfl.sync.bfly.b32 %[[O:f[0-9]+]], %[[M]], 1, 31, -1;
# CHECK-NEXT:    max.NaN.f32 %[[M]], %[[M]], %[[O]];
# CHECK:         shfl.sync.bfly.b32 %{{f[0-9]+}}, %[[M]], 16, 31, -1;
# CHECK:         mul.rn.f32 %[[NM:f[0-9]+]], %[[M]], 0fBFB8AA3B;
# CHECK-NEXT:    fma.rn.f32 %[[T:f[0-9]+]], %{{f[0-9]+}}, 0f3FB8AA3B, %[[NM]];
# CHECK-NEXT:    ex2.approx.ftz.f32 %{{f[0-9]+}}, %[[T]];
# CHECK:         shfl.sync.bfly.b32 %{{f[0-9]+}}, %[[S:f[0-9]+]], 16, 31, -1;
# CHECK:         rcp.rn.f32 %{{f[0-9]+}}, %[[S]];
# CHECK-NOT:     div.rn.f32
# CHECK:         cvt.rn.f16.f32 %[[H:h[0-9]+]],
# CHECK-NOT:     bar.sync
# CHECK:         st.global.b16 [%{{rd[0-9]+}}], %{{h[0-9]+}};
