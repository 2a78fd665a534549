# RUN: tilec compile %s --kernel bcast_heads --target sm_90a --emit ptx --arg X=f32[?,?,?] --arg Y=f32[?,?,?] | filecheck %s --check-prefix=HEADS
# RUN: tilec compile %s --kernel masked_rows --target sm_90a --emit ptx --arg X=f32[?,?] --arg Y=f32[?,?] | filecheck %s --check-prefix=ROWS
# RUN: tilec compile %s --kernel sum_one --target sm_90a --emit ptx --arg X=i32[?,?] --arg Y=i32[?] | filecheck %s --check-prefix=ONE
## Moves that stay in registers (4 warps, vec 4):
## * [1, 32, 128] -> [4, 32, 128]: the new dim is k bits 3-4 of the blocked layout, the source's
##   bits are the destination's v / thread / k bits 0-2, so the broadcast is a register copy
##   (exchange.register_map): no shared memory, no bar.sync;
## * where(rows < n, sum(x, axis=1, keepdims=True), 0) * x: the row sums stay where the
##   reduction left them (lanes of one warp: shfl.sync.bfly), the mask is recomputed at their
##   coordinates, the broadcast back to [64, 128] is free: no shared memory at all;
## * a sum over an axis of length 1 is the loaded register itself.
import tilec as ct


@ct.kernel
def bcast_heads(X: ct.Tensor, Y: ct.Tensor):
    x = ct.load_tile(X, offset=[0, 0, 0], size=[1, 32, 128])
    ct.store_tile(Y, offset=[0, 0, 0], tile=ct.broadcast_to(x, [4, 32, 128]) * 2.0)


@ct.kernel
def masked_rows(X: ct.Tensor, Y: ct.Tensor, n: int):
    x = ct.load_tile(X, offset=[0, 0], size=[64, 128])
    s = ct.where(ct.arange(64)[:, None] < n, ct.sum(x, axis=1, keepdims=True), 0.0)
    ct.store_tile(Y, offset=[0, 0], tile=s * x)


@ct.kernel
def sum_one(X: ct.Tensor, Y: ct.Tensor):
    x = ct.load_tile(X, offset=[0, 0], size=[64, 1])
    ct.store_tile(Y, offset=[0], tile=ct.sum(x, axis=1))

# HEADS-LABEL: .visible .entry bcast_heads(
# HEADS-NOT:   {{(ld|st)\.shared}}
# HEADS-NOT:   bar.sync
# HEADS:       ld.global.f32 %[[X:f[0-9]+]],
# HEADS-NOT:   bar.sync
# HEADS:       mul.rn.f32 %{{f[0-9]+}}, %[[X]], %{{f[0-9]+}};
# HEADS-NOT:   {{(ld|st)\.shared}}
# HEADS-NOT:   bar.sync
# HEADS:       ret;

# ROWS-LABEL: .visible .entry masked_rows(
# ROWS-NOT:   {{(ld|st)\.shared}}
# ROWS-NOT:   bar.sync
# ROWS:       shfl.sync.bfly.b32
# ROWS-NOT:   {{(ld|st)\.shared}}
# ROWS-NOT:   bar.sync
# ROWS:       setp.lt.s32
# ROWS-NOT:   {{(ld|st)\.shared}}
# ROWS-NOT:   bar.sync
# ROWS:       ret;

# ONE-LABEL: .visible .entry sum_one(
# ONE:       ld.global.b32 %[[V:r[0-9]+]],
# ONE-NOT:   {{(ld|st)\.shared}}
# ONE-NOT:   bar.sync
# ONE-NOT:   shfl
# ONE:       st.global.b32 [%{{rd[0-9]+}}], %[[V]];
# ONE-NOT:   bar.sync
# ONE:       ret;
