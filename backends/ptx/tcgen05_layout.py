"""Shapes and shared-memory layouts of sm_100a `tcgen05.mma` matmuls (`lower_tcgen05.py`).

Pure Python (no emission): which matmuls fit (`geometry`), how many TMEM columns their
accumulator takes, and where each operand element sits in shared memory.

Operands are staged K-major without swizzle, the PTX ISA canonical layout
`((8,m),(T,2k)):((1T,SBO),(1,LBO))` in 16-byte units (T = 16 / element bytes): 8-row x
16-byte core matrices, byte (r, kb) of an operand with `rows` rows (M for A, N for B^T) at

    (r / 8) * SBO + (kb / 16) * LBO + (r % 8) * 16 + kb % 16,   LBO = 128 B, SBO = K * esize / 16 * 128 B

so one MMA (32 bytes of K: 16 f16, 8 tf32 or 32 fp8 for kind::f8f6f4) reads two core-matrix columns and the next K
step starts 2 * LBO = 256 bytes further (descriptor + 16).  `Operand.descriptor()` is the
matching `Sm100SmemDescriptor` (start address 0, or-ed with the run-time address >> 4).

fp4 / fp6 operands of kind::f8f6f4 (`SUBBYTE_KINDS`) use the fp8 geometry (esize 1: 16 k per
16-byte core-matrix row), each 16-byte row holding its 16 elements packed (8 or 12 bytes) and
then padding; such matmuls (and mixed-type ones) take their operands straight from global
memory (`direct_sources`, `tcgen05_direct.py`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from tilec import dtypes as dt
from tilec.dialects import tile as T

from .descriptors import Sm100InstrDescriptor, Sm100SmemDescriptor
from .emitter import dtype_of

#: operand dtype -> (tcgen05 kind, PTX A/B type, element bytes, K per MMA)
KINDS = {dt.float16: ("f16", "f16", 2, 16), dt.bfloat16: ("f16", "bf16", 2, 16),
         dt.float32: ("tf32", "tf32", 4, 8)}
#: fp8 operands: kind::f8f6f4, 1-byte elements K-major, K32 per MMA (32 bytes, like the others)
FP8_KINDS = {dt.float8_e4m3fn: ("f8f6f4", "e4m3", 1, 32), dt.float8_e5m2: ("f8f6f4", "e5m2", 1, 32)}
#: selection switch of the fp8 path (tests/test_tcgen05_fp8.py): False keeps fp8 matmuls on the FMA lowering
FP8_READY = True
KINDS.update(FP8_KINDS)
#: fp4 / fp6 operands (kind::f8f6f4, padded: 16 elements per 16 smem bytes, so esize 1 like fp8); only
#: through `direct_sources` (the PTX backend keeps no fp4 / fp6 registers)
SUBBYTE_KINDS = {dt.float4_e2m1fn: ("f8f6f4", "e2m1", 1, 32), dt.float6_e2m3fn: ("f8f6f4", "e2m3", 1, 32),
                 dt.float6_e3m2fn: ("f8f6f4", "e3m2", 1, 32)}
F8F6F4_KINDS = {**FP8_KINDS, **SUBBYTE_KINDS}
TMEM_COLS = 512
SMEM_LIMIT = 227 * 1024 - 64      # sm_100 opt-in maximum per CTA, minus the static variables
LBO = 128                         # K-adjacent core matrices are contiguous


def enabled() -> bool:
    """`TILEC_PTX_TCGEN05=0` (or `TILEC_PTX_MMA=0`) turns the lowering off."""
    return os.environ.get("TILEC_PTX_TCGEN05", "1") != "0" and os.environ.get("TILEC_PTX_MMA", "1") != "0"


def fp8_enabled() -> bool:
    """fp8 (e4m3 / e5m2) matmuls on kind::f8f6f4 unless `TILEC_PTX_TCGEN05_FP8=0`."""
    return FP8_READY and os.environ.get("TILEC_PTX_TCGEN05_FP8", "1") != "0"


def split_tf32() -> bool:
    """f32 matmuls as 3xTF32 (default) or, with `TILEC_PTX_TF32=1`, one kind::tf32 product."""
    return os.environ.get("TILEC_PTX_TF32", "0") != "1"


@dataclass(frozen=True)
class Operand:
    """A K-major operand tile of `rows` x `K` elements of `esize` bytes at smem + `offset`,
    no swizzle (see the module docstring)."""

    rows: int
    K: int
    esize: int
    offset: int

    @property
    def chunk(self) -> int:
        """Elements per 16-byte core-matrix row."""
        return 16 // self.esize

    @property
    def sbo(self) -> int:
        return self.K * self.esize // 16 * LBO

    @property
    def nbytes(self) -> int:
        return self.rows // 8 * self.sbo

    def byte_offset(self, r: int, k: int) -> int:
        return (r // 8) * self.sbo + (k // self.chunk) * LBO + (r % 8) * 16 + (k % self.chunk) * self.esize

    def descriptor(self) -> Sm100SmemDescriptor:
        """The descriptor with start address 0 (the run-time address is or-ed in)."""
        return Sm100SmemDescriptor.for_smem(0, lbo=LBO, sbo=self.sbo)


@dataclass(frozen=True)
class Geometry:
    """What one tcgen05 matmul needs: shapes, kind, TMEM columns, shared-memory layout."""

    M: int
    N: int
    K: int
    dtype: dt.DType           # A's type (and B's unless b_dtype is given)
    split: bool               # 3xTF32
    b_dtype: dt.DType | None = None
    sources: tuple | None = None      # (A, B) `Source`s: operands copied from global memory (tcgen05_direct)

    def _info(self, d: dt.DType) -> tuple:
        return KINDS.get(d) or SUBBYTE_KINDS[d]

    @property
    def kind(self) -> str:
        return self._info(self.dtype)[0]

    @property
    def ab(self) -> str:
        return self._info(self.dtype)[1]

    @property
    def bb(self) -> str:
        """B's PTX type (kind::f8f6f4 allows A and B of different types)."""
        return self._info(self.b_dtype or self.dtype)[1]

    @property
    def esize(self) -> int:
        return self._info(self.dtype)[2]

    @property
    def kstep(self) -> int:
        return self._info(self.dtype)[3]

    @property
    def m_blocks(self) -> int:
        return -(-self.M // 128)

    @property
    def cols(self) -> int:
        return self.m_blocks * self.N

    @property
    def n_chunks(self) -> list[tuple[int, int]]:
        """(n0, size) MMA N extents: at most 256 each, multiples of 8."""
        out, n0 = [], 0
        while n0 < self.N:
            out.append((n0, min(256, self.N - n0)))
            n0 += 256
        return out

    def operands(self) -> tuple[list[Operand], list[Operand], int]:
        """(A parts, B parts, first free byte): [hi] or [hi, lo] for 3xTF32."""
        parts = 2 if self.split else 1
        off, a, b = 0, [], []
        for _ in range(parts):
            a.append(Operand(self.m_blocks * 128, self.K, self.esize, off))
            off = _align(off + a[-1].nbytes, 128)
        for _ in range(parts):
            b.append(Operand(self.N, self.K, self.esize, off))
            off = _align(off + b[-1].nbytes, 128)
        return a, b, off

    def c_stride(self, num_threads: int) -> int:
        """Row stride (floats) of the f32 accumulator staged in smem: padded by 4 floats (so
        the per-row v4 stores of 8 consecutive rows hit distinct banks) when the blocked
        layout's rows stay aligned with the padding (see `_split_coords`)."""
        return self.N + 4 if (num_threads * 4) % self.N == 0 else self.N

    def smem_bytes(self, num_threads: int, with_acc: bool) -> int:
        _, _, off = self.operands()
        c = self.M * self.c_stride(num_threads) * 4
        return max(off + (c if with_acc else 0), c)

    def idesc(self, n: int) -> Sm100InstrDescriptor:
        return Sm100InstrDescriptor.for_mma(self.kind, self.ab, self.bb, "f32", M=128, N=n)


def _align(x: int, a: int) -> int:
    return (x + a - 1) // a * a


def geometry(op: T.MatmulOp, num_warps: int) -> Geometry | None:
    """The tcgen05 geometry of `op`, or None when this lowering cannot take it."""
    at, bt, rt = op.lhs.type, op.rhs.type, op.result.type
    a_shape, b_shape = tuple(at.get_shape()), tuple(bt.get_shape())
    if len(a_shape) != 2 or len(b_shape) != 2 or num_warps % 4:
        return None
    d = dtype_of(at)
    if dtype_of(rt) is not dt.float32:
        return None
    (M, K), (_, N) = a_shape, b_shape
    src = direct_sources(op) if fp8_enabled() and d in (*F8F6F4_KINDS, *KINDS) else None
    if src is not None:
        g = Geometry(M, N, K, src[0].dtype, False, src[1].dtype, src)
    else:
        if d not in KINDS or dtype_of(bt) is not d:
            return None
        if d in FP8_KINDS and not fp8_enabled():
            return None
        g = Geometry(M, N, K, d, d is dt.float32 and split_tf32())
    if M % 64 or N % 8 or K % g.kstep or g.cols > TMEM_COLS:
        return None
    if g.smem_bytes(num_warps * 32, True) > SMEM_LIMIT:
        return None
    return g


# ---------------------------------------------------------------------------- direct operands


@dataclass(frozen=True, eq=False)
class Source:
    """A kind::f8f6f4 operand read from global memory by the matmul (`tcgen05_direct.stage`):
    `load` of a 2-D tensor of `dtype`; operand element (row, k) is load element (row, k) when
    `rows_axis` is 0, (k, row) when 1; `deferred`: the IR values between load and matmul."""

    load: T.LoadOp
    dtype: dt.DType
    rows_axis: int
    deferred: tuple


def exact_cast(src: dt.DType, dst: dt.DType) -> bool:
    """Every finite value of f8f6f4 type `src` is one of `dst` (the cast is the identity on values)."""
    return src is dst or (dst.is_float and dt.holds(dst, src))


def _single_use(v) -> bool:
    return len(list(v.uses)) == 1


def _no_store_between(ld: T.LoadOp, op: T.MatmulOp) -> bool:
    """The deferred load reads memory at the matmul: same block, no store or region op between."""
    if ld.parent_block() is not op.parent_block():
        return False
    x = ld.next_op
    while x is not None and x is not op:
        if isinstance(x, T.StoreOp) or x.regions:
            return False
        x = x.next_op
    return x is op


def _trace(v, rows_axis: int, op: T.MatmulOp) -> Source | None:
    """Follow operand `v` through single-use exact casts and 2-D transposes to its load."""
    deferred = []
    while True:
        if not _single_use(v):
            return None
        owner = v.owner
        deferred.append(v)
        if isinstance(owner, T.CastOp):
            s, d = dtype_of(owner.source.type), dtype_of(v.type)
            if s not in F8F6F4_KINDS or not exact_cast(s, d):
                return None
            v = owner.source
        elif isinstance(owner, T.PermuteOp):
            if list(T._get_ints(owner.perm)) != [1, 0]:
                return None
            rows_axis = 1 - rows_axis
            v = owner.source
        elif isinstance(owner, T.LoadOp):
            d = dtype_of(v.type)
            if d not in F8F6F4_KINDS or len(owner.tensor.type.get_shape()) != 2 or \
                    not _no_store_between(owner, op):
                return None
            return Source(owner, d, rows_axis, tuple(deferred))
        else:
            return None


def direct_sources(op: T.MatmulOp) -> tuple[Source, Source] | None:
    """(A, B) sources when the matmul's operands are kind::f8f6f4 loads (through exact casts,
    also to f16 / bf16 / f32, and transposes) and need this path: an fp4 / fp6 operand, or fp8
    A and B of different types in an fp8 matmul (the register path stages one type); None
    otherwise (the fp8 / f16 / tf32 register paths, or no tcgen05 at all)."""
    a = _trace(op.lhs, 0, op)
    b = _trace(op.rhs, 1, op)
    if a is None or b is None:
        return None
    if a.dtype not in SUBBYTE_KINDS and b.dtype not in SUBBYTE_KINDS and \
            (a.dtype is b.dtype or dtype_of(op.lhs.type) not in F8F6F4_KINDS):
        return None
    return a, b
