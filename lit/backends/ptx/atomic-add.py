# RUN: tilec compile %s --target sm_90a --emit ptx --arg X=f32[?] --arg H=f32[?] | filecheck %s
# RUN: tilec compile %s --target sm_90a --emit ptx --arg X=bf16[?] --arg H=bf16[?] | filecheck %s --check-prefix=BF16
# RUN: not tilec compile %s --target sm_80 --emit ptx --arg X=bf16[?] --arg H=bf16[?] 2>&1 | filecheck %s --check-prefix=SM80
## store_tile(mode="atomic_add") is a predicated red.global.add per element; bf16
## reductions need sm_90, so sm_80 reports the op, the dtype and the target.
import tilec as ct


@ct.kernel
def hist(X: ct.Tensor, H: ct.Tensor):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * 64], size=[64])
    ct.store_tile(H, offset=[0], tile=x, mode="atomic_add")

# CHECK-LABEL: .visible .entry hist(
# CHECK:         @%{{p[0-9]+}} red.global.add.f32 [%{{rd[0-9]+}}], %{{f[0-9]+}};

# BF16:          cvt.rn.bf16.f32 %[[H:h[0-9]+]], %{{f[0-9]+}};
# BF16-NEXT:     @%{{p[0-9]+}} red.global.add.noftz.bf16 [%{{rd[0-9]+}}], %[[H]];

# SM80:          atomic-add.py:13:5: error: `tile.store {mode = atomic_add}` with `bf16` operands is not implemented for `sm_80` (needs sm_90 or newer)
