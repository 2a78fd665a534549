"""Kernels and runners shared by the PTX tests: the same kernel runs on the CPU
interpreter (the reference semantics), on the PTX simulator (`tilec.backends.sim`, in
CI) and on a real GPU (`test_gpu_examples.py`), and the outputs are compared.

`CASES` lists (id, kernel, grid, make_args(rng), tolerance); `make_args` returns the
launch arguments with NumPy arrays (outputs poisoned with NaN, or a sentinel for ints).
"""

from __future__ import annotations

import operator

import ml_dtypes
import numpy as np

import tilec as ct


# ---------------------------------------------------------------------------- kernels


@ct.kernel
def binary_2d(X: ct.Tensor, Y: ct.Tensor, Z: ct.Tensor, FN: ct.Constant, BM: ct.Constant[int],
              BN: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    x = ct.load_tile(X, offset=[i * BM, j * BN], size=[BM, BN])
    y = ct.load_tile(Y, offset=[i * BM, j * BN], size=[BM, BN])
    ct.store_tile(Z, offset=[i * BM, j * BN], tile=FN(x, y))


@ct.kernel
def unary_1d(X: ct.Tensor, Z: ct.Tensor, FN: ct.Constant, B: ct.Constant[int]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * B], size=[B])
    ct.store_tile(Z, offset=[i * B], tile=FN(x))


@ct.kernel
def cast_1d(X: ct.Tensor, Z: ct.Tensor, B: ct.Constant[int]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * B], size=[B])
    ct.store_tile(Z, offset=[i * B], tile=x.astype(Z.dtype))


@ct.kernel
def where_cmp(X: ct.Tensor, Y: ct.Tensor, Z: ct.Tensor, M: ct.Tensor, B: ct.Constant[int]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * B], size=[B])
    y = ct.load_tile(Y, offset=[i * B], size=[B])
    m = (x < y) | (x == y * 2.0)
    ct.store_tile(Z, offset=[i * B], tile=ct.where(m, x, y - 1.0))
    ct.store_tile(M, offset=[i * B], tile=(x != y) & ~(x >= 0.5))


@ct.kernel
def reduce_3d(X: ct.Tensor, Z: ct.Tensor, FN: ct.Constant, AXIS: ct.Constant[int], A: ct.Constant[int],
              B: ct.Constant[int], C: ct.Constant[int]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * A, 0, 0], size=[A, B, C], padding=-3.0)
    r = FN(x, axis=AXIS, keepdims=True)
    ct.store_tile(Z, offset=[i * r.shape[0], 0, 0], tile=r.astype(Z.dtype))


@ct.kernel
def reduce_all(X: ct.Tensor, Z: ct.Tensor, FN: ct.Constant, B: ct.Constant[int]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[0, i * B], size=[3, B])
    r = FN(x)
    ct.store_tile(Z, offset=[i], tile=ct.reshape(r, [1]).astype(Z.dtype))


@ct.kernel
def permute_3d(X: ct.Tensor, Z: ct.Tensor, PERM: ct.Constant, A: ct.Constant[int], B: ct.Constant[int],
               C: ct.Constant[int]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[0, 0, 0], size=[A, B, C])
    y = ct.permute(x * 2.0 + i, PERM)
    ct.store_tile(Z, offset=[0, 0, i * y.shape[2]], tile=y)


@ct.kernel
def batched_matmul(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int],
                   BK: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    b = ct.tile_idx(2)
    a = ct.load_tile(A, offset=[b, i * BM, 0], size=[1, BM, BK])
    w = ct.load_tile(B, offset=[0, j * BN], size=[BK, BN])
    c = ct.matmul(a, w[None, :, :])
    ct.store_tile(C, offset=[b, i * BM, j * BN], tile=c)


@ct.kernel
def matmul_2d(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int],
              BK: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.zeros([BM, BN])
    for k in range(0, A.shape[1], BK):
        a = ct.load_tile(A, offset=[i * BM, k], size=[BM, BK])
        b = ct.load_tile(B, offset=[k, j * BN], size=[BK, BN])
        acc += a @ b
    ct.store_tile(C, offset=[i * BM, j * BN], tile=acc)


@ct.kernel(num_warps=8)
def matmul_2d_8warps(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int],
                     BK: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.zeros([BM, BN])
    for k in range(0, A.shape[1], BK):
        a = ct.load_tile(A, offset=[i * BM, k], size=[BM, BK])
        b = ct.load_tile(B, offset=[k, j * BN], size=[BK, BN])
        acc += a @ b
    ct.store_tile(C, offset=[i * BM, j * BN], tile=acc)


@ct.kernel
def int_matmul(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor):
    a = ct.load_tile(A, offset=[0, 0], size=[16, 96])
    b = ct.load_tile(B, offset=[0, 0], size=[96, 12])
    ct.store_tile(C, offset=[0, 0], tile=ct.matmul(a, b))


@ct.kernel
def grid4(X: ct.Tensor, Z: ct.Tensor):
    a = ct.tile_idx(0)
    b = ct.tile_idx(1)
    c = ct.tile_idx(2)
    d = ct.tile_idx(3)
    n = ct.num_tiles(2)
    lin = ((a * ct.num_tiles(1) + b) * n + c) * ct.num_tiles(3) + d
    x = ct.load_tile(X, offset=[lin * 8], size=[8])
    ct.store_tile(Z, offset=[lin * 8], tile=x + lin)


@ct.kernel
def atomic_hist(X: ct.Tensor, H: ct.Tensor, B: ct.Constant[int]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * B], size=[B])
    s = ct.sum(x, axis=0, keepdims=True)
    ct.store_tile(H, offset=[0], tile=ct.broadcast_to(s, [4]), mode="atomic_add")


@ct.kernel
def loops_and_ifs(X: ct.Tensor, Z: ct.Tensor, n: int, B: ct.Constant[int]):
    i = ct.tile_idx(0)
    acc = ct.zeros([B], ct.float32)
    k = 0
    for t in range(i, n, 2):
        x = ct.load_tile(X, offset=[t * B], size=[B])
        if t % 3 == 0:
            acc = acc + x
        else:
            acc = acc - x * 0.5
        k = k + t
    ct.store_tile(Z, offset=[i * B], tile=acc + k)


@ct.kernel(num_warps=8)
def wide_softmax(X: ct.Tensor, Y: ct.Tensor, BN: ct.Constant[int]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i, 0], size=[1, BN], padding=float("-inf"))
    e = ct.exp(x - ct.max(x, axis=1, keepdims=True))
    ct.store_tile(Y, offset=[i, 0], tile=e / ct.sum(e, axis=1, keepdims=True))


@ct.kernel
def philox(Z: ct.Tensor, seed: int, B: ct.Constant[int]):
    i = ct.tile_idx(0)
    offs = ct.arange(B) + i * B
    ct.store_tile(Z, offset=[i * B], tile=ct.rand(seed, offs))


@ct.kernel
def int_ops(X: ct.Tensor, Y: ct.Tensor, Z: ct.Tensor, FN: ct.Constant, B: ct.Constant[int]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * B], size=[B])
    y = ct.load_tile(Y, offset=[i * B], size=[B])
    ct.store_tile(Z, offset=[i * B], tile=FN(x, y))


# ---------------------------------------------------------------------------- cases


def _f(rng, shape, dtype, lo=None):
    x = rng.standard_normal(shape) * 2
    if lo is not None:
        x = np.abs(x) + lo
    return x.astype(dtype)


def _out(shape, dtype):
    d = np.dtype(dtype)
    if d.kind == "f" or d.name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
        return np.full(shape, np.nan, dtype)
    if d.kind == "b":
        return np.zeros(shape, dtype)
    return np.full(shape, 77, dtype)


def _ints(rng, shape, dtype, lo=-100, hi=100):
    return rng.integers(lo, hi, shape).astype(dtype)


BF16 = ml_dtypes.bfloat16
F8 = ml_dtypes.float8_e4m3fn
CASES = []


def case(name, kernel, grid, make, tol=0.0, targets=("sm_80", "sm_90a", "sm_100a")):
    CASES.append((name, kernel, grid, make, tol, targets))


_BIN_F = [("add", operator.add), ("sub", operator.sub), ("mul", operator.mul), ("div", operator.truediv),
          ("max", ct.maximum), ("min", ct.minimum), ("floordiv", operator.floordiv), ("mod", operator.mod),
          ("pow", operator.pow)]
for _dt, _tol in ((np.float32, 2e-5), (np.float16, 2e-3), (BF16, 2e-2)):
    for _name, _fn in _BIN_F:
        def _mk(rng, fn=_fn, d=_dt, name=_name):
            M, N = 37, 45
            x = _f(rng, (M, N), d, 0.1 if name == "pow" else None)
            y = _f(rng, (M, N), d, 0.5 if name in ("div", "floordiv", "mod") else None)
            if name == "pow":
                y = (np.asarray(y, np.float32) / 2).astype(d)
            return [x, y, _out((M, N), d), fn, 16, 32]
        case(f"binary-{_name}-{np.dtype(_dt).name}", binary_2d, (3, 2), _mk,
             _tol * (50 if _name == "pow" else 1) if _name not in ("floordiv", "mod") else 1e-2)

for _dt in (np.int32, np.int8, np.uint8, np.int64):
    for _name, _fn in (("add", operator.add), ("sub", operator.sub), ("mul", operator.mul),
                       ("floordiv", operator.floordiv), ("mod", operator.mod), ("max", ct.maximum),
                       ("and", operator.and_), ("xor", operator.xor), ("shl", operator.lshift),
                       ("shr", operator.rshift)):
        def _mk(rng, fn=_fn, d=_dt, name=_name):
            n = 700
            lo = 0 if np.dtype(d).kind == "u" else -100
            x = _ints(rng, n, d, lo, 100)
            y = _ints(rng, n, d, 0 if name in ("shl", "shr") else lo, 9 if name in ("shl", "shr") else 100)
            return [x, y, _out(n, d), fn, 256]
        case(f"int-{_name}-{np.dtype(_dt).name}", int_ops, (3,), _mk)

_UN = [("exp", ct.exp, None, 2e-5), ("exp2", ct.exp2, None, 2e-5), ("log", ct.log, 0.01, 2e-5),
       ("log2", ct.log2, 0.01, 2e-5), ("sqrt", ct.sqrt, 0.0, 2e-6), ("rsqrt", ct.rsqrt, 0.01, 2e-5),
       ("tanh", ct.tanh, None, 1e-3), ("sigmoid", ct.sigmoid, None, 2e-5), ("erf", ct.erf, None, 1e-6),
       ("sin", ct.sin, None, 2e-5), ("cos", ct.cos, None, 2e-5), ("floor", ct.floor, None, 0.0),
       ("ceil", ct.ceil, None, 0.0), ("abs", ct.abs, None, 0.0), ("neg", operator.neg, None, 0.0),
       ("relu", ct.relu, None, 0.0)]
for _name, _fn, _lo, _tol in _UN:
    for _dt in (np.float32, np.float16):
        def _mk(rng, fn=_fn, lo=_lo, d=_dt):
            n = 1000
            return [_f(rng, n, d, lo), _out(n, d), fn, 512]
        case(f"unary-{_name}-{np.dtype(_dt).name}", unary_1d, (2,), _mk,
             max(_tol, 2e-3 if _dt == np.float16 else 0.0))

for _src, _dst in ((np.float32, np.float16), (np.float32, BF16), (np.float16, np.float32), (np.float32, np.int32),
                   (np.float32, np.int8), (np.float32, np.uint8), (np.int32, np.float32), (np.int32, np.float16),
                   (np.int64, np.int32), (np.int32, np.int64), (np.int8, np.float32), (np.float32, np.bool_),
                   (np.bool_, np.float32), (np.int32, np.int8), (np.float64, np.float32), (np.float32, np.float64),
                   (np.float64, np.float16)):
    def _mk(rng, s=_src, d=_dst):
        n = 900
        if np.dtype(s).kind == "f" or s is BF16:
            x = (rng.standard_normal(n) * 300).astype(s)
        elif np.dtype(s).kind == "b":
            x = rng.integers(0, 2, n).astype(bool)
        else:
            x = rng.integers(-1000, 1000, n).astype(s)
        return [x, _out(n, d), 256]
    case(f"cast-{np.dtype(_src).name}-{np.dtype(_dst).name}", cast_1d, (4,), _mk)


def _fp8_cast(rng):
    n = 600
    return [(rng.standard_normal(n) * 100).astype(np.float32), _out(n, F8), 256]


case("cast-float32-float8_e4m3fn", cast_1d, (3,), _fp8_cast, targets=("sm_90a", "sm_100a"))


def _where(rng):
    n = 777
    x = rng.standard_normal(n).astype(np.float32)
    y = np.where(rng.random(n) < 0.2, x, rng.standard_normal(n)).astype(np.float32)
    return [x, y, _out(n, np.float32), np.zeros(n, bool), 256]


case("where-cmp", where_cmp, (4,), _where)

for _fn in (ct.sum, ct.max, ct.min, ct.argmax, ct.argmin):
    for _axis in (0, 1, 2):
        for _shape in ((4, 6, 10), (3, 50, 2), (8, 4, 64)):
            def _mk(rng, fn=_fn, axis=_axis, shape=_shape):
                A, B, C = shape
                x = np.round(rng.standard_normal((2 * A + 1, B, C)) * 4).astype(np.float32)  # ties for argmax
                rshape = [A, B, C]
                rshape[axis] = 1
                out = np.int32 if fn in (ct.argmax, ct.argmin) else np.float32
                return [x, _out((3 * rshape[0], rshape[1], rshape[2]), out), fn, axis, A, B, C]
            case(f"reduce-{_fn.__name__}-axis{_axis}-{'x'.join(map(str, _shape))}", reduce_3d, (3,), _mk, 1e-5)

for _fn in (ct.sum, ct.max, ct.argmin):
    def _mk(rng, fn=_fn):
        x = rng.standard_normal((3, 700)).astype(np.float16)
        out = np.int32 if fn is ct.argmin else np.float32
        return [x, _out(3, out), fn, 256]
    case(f"reduce-all-{_fn.__name__}", reduce_all, (3,), _mk, 1e-3)

for _perm in ((1, 0, 2), (2, 1, 0), (0, 2, 1), (2, 0, 1)):
    def _mk(rng, perm=_perm):
        A, B, C = 4, 6, 10
        shape = [(A, B, C)[p] for p in perm]
        x = rng.standard_normal((A, B, C)).astype(np.float32)
        return [x, _out((shape[0], shape[1], shape[2] * 2), np.float32), perm, A, B, C]
    case(f"permute-{''.join(map(str, _perm))}", permute_3d, (2,), _mk)


def _bmm(rng, d=np.float16):
    a = rng.standard_normal((3, 50, 40)).astype(d)
    b = rng.standard_normal((40, 36)).astype(d)
    return [a, b, _out((3, 50, 36), np.float32), 32, 16, 40]


case("batched-matmul-f16", batched_matmul, (2, 3, 3), _bmm, 1e-4)
case("batched-matmul-bf16", batched_matmul, (2, 3, 3), lambda rng: _bmm(rng, BF16), 1e-4)
case("batched-matmul-f32", batched_matmul, (2, 3, 3), lambda rng: _bmm(rng, np.float32), 1e-4)


for _kern, _d, (_M, _N, _K), (_BM, _BN, _BK) in (
        (matmul_2d, np.float16, (100, 50, 70), (48, 24, 32)),
        (matmul_2d, BF16, (40, 30, 20), (16, 8, 16)),
        (matmul_2d, np.float16, (64, 64, 64), (64, 64, 64)),
        (matmul_2d_8warps, np.float16, (130, 70, 90), (64, 32, 32)),
        (matmul_2d_8warps, BF16, (130, 70, 90), (32, 64, 48))):
    def _mk(rng, d=_d, M=_M, N=_N, K=_K, blk=(_BM, _BN, _BK)):
        return [rng.standard_normal((M, K)).astype(d), rng.standard_normal((K, N)).astype(d),
                _out((M, N), np.float32), *blk]
    case(f"mma-{_kern.name}-{np.dtype(_d).name}-{_M}x{_N}x{_K}-{_BM}x{_BN}x{_BK}", _kern,
         (-(-_M // _BM), -(-_N // _BN)), _mk, 5e-5)


def _imm(rng):
    return [rng.integers(-50, 50, (16, 96)).astype(np.int8), rng.integers(-50, 50, (96, 12)).astype(np.int8),
            _out((16, 12), np.int32)]


case("int8-matmul", int_matmul, (1,), _imm)


def _grid4(rng):
    n = 2 * 3 * 4 * 5 * 8
    return [rng.standard_normal(n).astype(np.float32), _out(n, np.float32)]


case("grid-rank-4", grid4, (2, 3, 4, 5), _grid4)


def _hist(rng):
    return [rng.integers(-5, 5, 3000).astype(np.float32), np.zeros(4, np.float32), 512]


case("atomic-add", atomic_hist, (6,), _hist)


def _loops(rng):
    B, n = 64, 9
    return [rng.standard_normal(n * B).astype(np.float32), _out(4 * B, np.float32), n, B]


case("loops-and-ifs", loops_and_ifs, (4,), _loops, 1e-5)


def _wide(rng):
    x = (rng.standard_normal((5, 1500)) * 3).astype(np.float32)
    return [x, _out((5, 1500), np.float32), 2048]


case("softmax-8-warps", wide_softmax, (5,), _wide, 1e-5)


def _wider(rng):  # a 1 x 16384 f32 tile: 64 KiB of shared memory, above the 48 KiB default
    x = (rng.standard_normal((3, 12000)) * 3).astype(np.float32)
    return [x, _out((3, 12000), np.float32), 16384]


case("softmax-64KiB-smem", wide_softmax, (3,), _wider, 1e-5)


def _philox(rng):
    return [_out(3000, np.float32), -123456789, 1024]


case("philox", philox, (3,), _philox)


# ---------------------------------------------------------------------------- vector accesses, shuffle reductions
# (backends/ptx/vectorize.py, lower_reduce.py): aligned / unaligned / ragged tiles, every
# dtype the vector path moves, reductions on every axis across lanes, warps and registers.


@ct.kernel
def copy_2d(X: ct.Tensor, Z: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int], SHIFT: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    x = ct.load_tile(X, offset=[i * BM, j * BN + SHIFT], size=[BM, BN], padding=-3.0)
    ct.store_tile(Z, offset=[i * BM, j * BN + SHIFT], tile=x + x)


@ct.kernel
def copy_1d_pad(X: ct.Tensor, Z: ct.Tensor, B: ct.Constant[int]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * B], size=[2 * B], padding=5.0)   # reads past the end
    ct.store_tile(Z, offset=[i * 2 * B], tile=x)


@ct.kernel
def reduce_flat(X: ct.Tensor, Z: ct.Tensor, FN: ct.Constant, R: ct.Constant[int], B: ct.Constant[int]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[0, i * B], size=[R, B])
    r = FN(x)
    ct.store_tile(Z, offset=[i], tile=ct.reshape(r, [1]).astype(Z.dtype))


@ct.kernel(num_warps=8)
def softmax_axis0(X: ct.Tensor, Y: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int]):
    j = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[0, j * BN], size=[BM, BN], padding=float("-inf")).astype(ct.float32)
    e = ct.exp(x - ct.max(x, axis=0, keepdims=True))
    ct.store_tile(Y, offset=[0, j * BN], tile=(e / ct.sum(e, axis=0, keepdims=True)).astype(Y.dtype))


@ct.kernel
def online_stats(X: ct.Tensor, M: ct.Tensor, L: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int]):
    i = ct.tile_idx(0)
    m = ct.full([BM, 1], float("-inf"), ct.float32)
    s = ct.zeros([BM, 1], ct.float32)
    for start in range(0, X.shape[1], BN):
        x = ct.load_tile(X, offset=[i * BM, start], size=[BM, BN], padding=float("-inf"))
        m_new = ct.maximum(m, ct.max(x, axis=1, keepdims=True))
        s = s * ct.exp(m - m_new) + ct.sum(ct.exp(x - m_new), axis=1, keepdims=True)
        m = m_new
    ct.store_tile(M, offset=[i * BM, 0], tile=m)
    ct.store_tile(L, offset=[i * BM, 0], tile=s + ct.max(m, axis=0, keepdims=True))


@ct.kernel(num_warps=8)
def softmax_rows_f16(X: ct.Tensor, Y: ct.Tensor, BN: ct.Constant[int]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i, 0], size=[1, BN], padding=float("-inf")).astype(ct.float32)
    e = ct.exp(x - ct.max(x, axis=1, keepdims=True))
    ct.store_tile(Y, offset=[i, 0], tile=(e / ct.sum(e, axis=1, keepdims=True)).astype(Y.dtype))


@ct.kernel
def scale_rows_f16(X: ct.Tensor, W: ct.Tensor, Y: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * BM, 0], size=[BM, BN])         # mixes with another load:
    w = ct.load_tile(W, offset=[0], size=[BN])                      # stays in the canonical layout
    ct.store_tile(Y, offset=[i * BM, 0], tile=x * w[None, :] + ct.sum(x, axis=1, keepdims=True))


reduce_3d_8warps = ct.kernel(num_warps=8)(reduce_3d.fn)

for _d in (np.float32, np.float16, BF16, np.float64, np.int32, np.int64):
    for _shape, (_BM, _BN), _shift, _why in (((64, 96), (16, 32), 0, "aligned"),
                                             ((70, 96), (16, 32), 0, "ragged-rows"),
                                             ((64, 98), (16, 32), 0, "unaligned-rows"),
                                             ((64, 100), (16, 32), 0, "pitch-16-bytes"),
                                             ((40, 96), (8, 32), 2, "offset-2"),
                                             ((40, 96), (8, 32), 1, "offset-1")):
        def _mk(rng, d=_d, shape=_shape, blk=(_BM, _BN), shift=_shift):
            x = (rng.standard_normal(shape) * 50).astype(d)
            return [x, _out(shape, d), *blk, shift]
        case(f"copy-{np.dtype(_d).name}-{_why}", copy_2d, (-(-_shape[0] // _BM), -(-_shape[1] // _BN)), _mk)


for _d in (np.float16, BF16):
    for _shape, _why in (((64, 192), "aligned"), ((70, 192), "ragged-rows"), ((64, 200), "ragged-cols"),
                         ((64, 196), "unaligned-rows")):
        def _mk(rng, d=_d, shape=_shape):
            return [(rng.standard_normal(shape) * 50).astype(d), _out(shape, d), 16, 64, 0]
        case(f"copy-wide-{np.dtype(_d).name}-{_why}", copy_2d, (-(-_shape[0] // 16), -(-_shape[1] // 64)), _mk)


def _softmax_f16(rng):
    x = (rng.standard_normal((5, 1504)) * 3).astype(np.float16)
    return [x, _out((5, 1504), np.float16), 2048]


case("softmax-rows-f16-wide-ragged", softmax_rows_f16, (5,), _softmax_f16, 2e-3)


def _scale_rows(rng):
    x = rng.standard_normal((40, 256)).astype(np.float16)
    return [x, rng.standard_normal(256).astype(np.float16), _out((40, 256), np.float16), 8, 256]


case("wide-rejected-mixed-loads", scale_rows_f16, (5,), _scale_rows, 2e-2)


def _copy1d(rng):
    return [rng.standard_normal(1000).astype(np.float32), _out(4 * 512, np.float32), 256]


case("copy-1d-past-the-end", copy_1d_pad, (4,), _copy1d)

for _fn in (ct.sum, ct.max, ct.min, ct.argmax, ct.argmin):
    for _axis in (0, 1, 2):
        for _shape in ((4, 16, 64), (2, 32, 8), (16, 2, 16)):
            def _mk(rng, fn=_fn, axis=_axis, shape=_shape):
                A, B, C = shape
                x = rng.integers(-2, 3, (2 * A + 1, B, C)).astype(np.float32)  # many ties, across warps too
                rshape = [A, B, C]
                rshape[axis] = 1
                out = np.int32 if fn in (ct.argmax, ct.argmin) else np.float32
                return [x, _out((3 * rshape[0], rshape[1], rshape[2]), out), fn, axis, A, B, C]
            case(f"shfl-reduce-8w-{_fn.__name__}-axis{_axis}-{'x'.join(map(str, _shape))}", reduce_3d_8warps,
                 (3,), _mk, 1e-5)

for _d in (np.float64, np.int64, np.int32):
    for _axis in (1, 2):
        def _mk(rng, d=_d, axis=_axis):
            A, B, C = 2, 16, 32
            x = (rng.standard_normal((2 * A + 1, B, C)) * 100).astype(d)
            rshape = [A, B, C]
            rshape[axis] = 1
            return [x, _out((3 * rshape[0], rshape[1], rshape[2]), d), ct.sum, axis, A, B, C]
        case(f"shfl-reduce-sum-{np.dtype(_d).name}-axis{_axis}", reduce_3d, (3,), _mk, 1e-12)

for _fn in (ct.sum, ct.max, ct.argmax):
    def _mk(rng, fn=_fn):
        x = rng.integers(-3, 4, (4, 768)).astype(np.float16)
        out = np.int32 if fn is ct.argmax else np.float32
        return [x, _out(3, out), fn, 4, 256]
    case(f"shfl-reduce-all-{_fn.__name__}", reduce_flat, (3,), _mk, 1e-3)


def _softmax0(rng):
    x = (rng.standard_normal((50, 200)) * 3).astype(np.float16)
    return [x, _out((50, 200), np.float16), 64, 32]


case("softmax-axis0", softmax_axis0, (7,), _softmax0, 2e-3)


def _online(rng):
    x = (rng.standard_normal((37, 300)) * 3).astype(np.float32)
    return [x, _out((37, 1), np.float32), _out((37, 1), np.float32), 16, 64]


case("online-softmax-stats-loop", online_stats, (3,), _online, 1e-5)


# ---------------------------------------------------------------------------- runners


def outputs(args) -> list:
    return [a for a in args if isinstance(a, np.ndarray)]


def run_cpu(kernel, grid, args) -> list:
    args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    kernel[grid](*args)
    return outputs(args)


def run_sim(kernel, grid, args, target="sm_90a") -> list:
    from tilec.backends.sim.launch import run_ptx_kernel
    from tilec.driver import compile_kernel

    args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    specs, values = kernel.bind(tuple(args))
    artifact = compile_kernel(kernel, specs, target)
    run_ptx_kernel(artifact.gpu, values, grid)
    return outputs(args)


def to_torch(a):
    import torch

    if a.dtype == BF16:
        return torch.from_numpy(a.view(np.int16)).view(torch.bfloat16).cuda()
    if a.dtype == F8:
        return torch.from_numpy(a.view(np.uint8)).view(torch.float8_e4m3fn).cuda()
    return torch.from_numpy(a).cuda()


def from_torch(t, like):
    import torch

    if t.dtype in (torch.bfloat16, torch.float8_e4m3fn):
        raw = t.view(torch.int16 if t.dtype == torch.bfloat16 else torch.uint8).cpu().numpy()
        return raw.view(like.dtype)
    return t.cpu().numpy()


def run_gpu(kernel, grid, args) -> list:
    import torch

    dev = [to_torch(a) if isinstance(a, np.ndarray) else a for a in args]
    kernel[grid](*dev)
    torch.cuda.synchronize()
    return [from_torch(t, a) for t, a in zip(dev, args) if isinstance(a, np.ndarray)]


def max_error(ref: list, got: list, rel: bool = True) -> float:
    """Largest |got - ref| / max(1, |ref|) over all outputs (NaN where ref has NaN is equal)."""
    worst = 0.0
    for r, g in zip(ref, got):
        r64 = np.asarray(r).astype(np.float64)
        g64 = np.asarray(g).astype(np.float64)
        same = (np.isnan(r64) & np.isnan(g64)) | (r64 == g64)
        diff = np.abs(r64 - g64) / (np.maximum(1.0, np.abs(r64)) if rel else 1.0)
        diff = np.where(same, 0.0, np.where(np.isnan(diff), np.inf, diff))
        if diff.size:
            worst = max(worst, float(diff.max()))
    return worst
