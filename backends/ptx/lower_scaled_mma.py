"""`tile.scaled_matmul` (block-scaled FP4) on sm_100a: `tcgen05.mma ... .block_scale`.

MXFP4 (e2m1 with one ue8m0 scale per 32 elements of K) issues
`tcgen05.mma.cta_group::1.kind::mxf4.block_scale.scale_vec::2X`; NVFP4 (e2m1 with one e4m3
scale per 16) issues `kind::mxf4nvf4.block_scale.scale_vec::4X`.  K = 64 per instruction.

Selected by the kernel hook `plan_scaled` when (and only when) every piece fits; anything
else keeps the "`tile.scaled_matmul` ... is not implemented for `sm_100a`" error:

* lhs is a `tile.load` of a 2-D packed fp4 tensor, rhs a `tile.permute` ([1, 0]) of such a
  load ([N, K], K-major: what the MMA reads), both scales `tile.load`s of 2-D ue8m0 / e4m3
  tensors, each load used only by the matmul (through the permute), in its block with no
  store between (the bytes are read at the matmul);
* M = 128 (or 64: padded to 128 rows of zeros), N a multiple of 8 in [8, 128], K a multiple of 64, 4 warps, block 32 with ue8m0
  or block 16 with e4m3, and the kernel has no other tcgen05 matmul.

The loads are deferred (their `Val` keeps the offset registers, no data): the matmul copies
the bytes as they are from global to shared memory (thread t: row t; byte loads predicated on
the tensor's bounds, padding 0 for fp4 and the load's padding for the scales):

* A [128, K] and B [N, K] packed e2m1 into the K-major no-swizzle canonical layout, in bytes
  the same as 16-bit operands (`tcgen05_layout.Operand` with K/4 "16-bit" elements: 8-row x
  16-byte core matrices, LBO = 128 B, SBO = K/2 / 16 * 128 B); one MMA reads 32 bytes of K,
  the next starts 256 bytes further (descriptor + 16);
* the scale factors of row r, as 32-bit words w (bytes 4w..4w+3 of the row's scales) in the
  `tcgen05.cp .32x128b.warpx4` order: word w of row r at sf + 512 w + (r % 32) * 16 + (r / 32) * 4,
  then thread 0 copies each 512-byte block to TMEM columns sf_col + 4w.. (lane r % 32 of every
  lane quarter, column + r / 32: CUTLASS `tmem_sf_frg`, backends/sim/isa_tcgen05.py).

MMA step s uses scale bytes j0 = s * 64 / block.. of each row: word j0 / 4, byte id j0 % 4
(`Sm100BlockScaledInstrDescriptor.for_mma(..., sfa_id, sfb_id)`).  The accumulator handling,
TMEM allocation, commit / mbarrier wait and the TMEM -> registers epilogue are those of
`lower_tcgen05.py` (accumulators carried by a K loop stay resident in TMEM).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from tilec import dtypes as dt
from tilec.dialects import tile as T

from . import lower_memory, lower_shape, lower_tcgen05  # noqa: F401  (their lowerings first)
from .descriptors import Sm100BlockScaledInstrDescriptor, Sm100ScaleFactorSmemDescriptor
from .emitter import KERNEL_HOOKS, LOWERINGS, KernelEmitter, Val, lowers
from .tcgen05_layout import LBO, SMEM_LIMIT, TMEM_COLS, Geometry, Operand, enabled
from .tcgen05_moves import read_back, smem_to_tmem, store_c

_prev_load = LOWERINGS[T.LoadOp]
_prev_permute = LOWERINGS[T.PermuteOp]

#: (block, scale dtype) -> (kind, opcode suffix)
VARIANTS = {(32, dt.float8_e8m0fnu): ("mxf4", "block_scale.scale_vec::2X"),
            (16, dt.float8_e4m3fn): ("mxf4nvf4", "block_scale.scale_vec::4X")}
_NP_SCALE = {dt.float8_e8m0fnu: ml_dtypes.float8_e8m0fnu, dt.float8_e4m3fn: ml_dtypes.float8_e4m3fn}
_SF_PTX = {dt.float8_e8m0fnu: "ue8m0", dt.float8_e4m3fn: "ue4m3"}
SF_WORD_BYTES = 512                 # one tcgen05.cp 32x128b.warpx4 source: 128 rows x 4 bytes


class Scaled:
    """One planned block-scaled matmul."""

    def __init__(self, op: T.ScaledMatmulOp, M: int, N: int, K: int, block: int, sdt: dt.DType):
        self.op, self.M, self.N, self.K, self.block, self.sdt = op, M, N, K, block, sdt
        self.kind, self.suffix = VARIANTS[(block, sdt)]
        self.g = Geometry(M, N, K // 4, dt.float16, False)   # bytes as 16-bit K-major operands
        self.words = -(-(K // block) // 4)                    # 32-bit scale words per row
        self.sfa_col = -(-N // 32) * 32
        self.sfb_col = self.sfa_col + 4 * self.words
        self.cols = self.sfb_col + 4 * self.words
        a, b, off = self.g.operands()
        self.A, self.B = a[0], b[0]
        self.sfa_off = off
        self.sfb_off = off + self.words * SF_WORD_BYTES
        self.off_c = self.sfb_off + self.words * SF_WORD_BYTES

    def smem_bytes(self, num_threads: int, with_acc: bool) -> int:
        c = self.M * self.g.c_stride(num_threads) * 4
        return max(self.off_c + (c if with_acc else 0), c)


def _is_load(v, dtypes) -> T.LoadOp | None:
    op = v.owner
    if not isinstance(op, T.LoadOp) or len(list(v.uses)) != 1 or len(op.result.type.get_shape()) != 2:
        return None
    try:
        from .emitter import dtype_of
        d = dtype_of(op.result.type)
    except KeyError:
        return None
    return op if d in dtypes else None


def _no_store_between(ld: T.LoadOp, op: T.ScaledMatmulOp) -> bool:
    """The deferred load reads memory at the matmul: it must sit in the matmul's block with no
    store (or any op with regions) between the two."""
    if ld.parent_block() is not op.parent_block():
        return False
    x = ld.next_op
    while x is not None and x is not op:
        if isinstance(x, T.StoreOp) or x.regions:
            return False
        x = x.next_op
    return x is op


def match(op: T.ScaledMatmulOp, num_warps: int) -> Scaled | None:
    """The plan of `op` when this lowering can take it, else None."""
    from .emitter import dtype_of

    if num_warps != 4:
        return None
    a = _is_load(op.lhs, (dt.float4_e2m1fn,))
    perm = op.rhs.owner
    if a is None or not isinstance(perm, T.PermuteOp) or list(T._get_ints(perm.perm)) != [1, 0] \
            or len(list(op.rhs.uses)) != 1:
        return None
    b = _is_load(perm.source, (dt.float4_e2m1fn,))
    sa = _is_load(op.lhs_scale, tuple(_NP_SCALE))
    sb = _is_load(op.rhs_scale, tuple(_NP_SCALE))
    if b is None or sa is None or sb is None:
        return None
    for ld in (a, b, sa, sb):
        if len(ld.tensor.type.get_shape()) != 2 or not _no_store_between(ld, op):
            return None
    sdt = dtype_of(op.lhs_scale.type)
    block = op.block.value.data
    (M, K), (N, _) = op.lhs.type.get_shape(), perm.source.type.get_shape()
    if (block, sdt) not in VARIANTS or M not in (64, 128) or N % 8 or not 8 <= N <= 128 or K % 64:
        return None
    s = Scaled(op, M, N, K, block, sdt)
    if s.cols > TMEM_COLS or s.smem_bytes(num_warps * 32, True) > SMEM_LIMIT:
        return None
    return s


def plan_scaled(em: KernelEmitter) -> None:
    """KERNEL_HOOK (after lower_tcgen05.plan_kernel): plan the block-scaled matmuls."""
    em.scaled = {}
    em.scaled_loads = set()
    if em.target != "sm_100a" or not enabled() or getattr(em, "tcgen05", None) is not None:
        return
    ops = [o for o in em.func.walk() if isinstance(o, T.ScaledMatmulOp)]
    if len(ops) != 1:
        return
    s = match(ops[0], em.num_warps)
    if s is None:
        return
    op = s.op
    plan = lower_tcgen05.Plan()
    plan.geometry[op] = s.g
    plan.column[op] = 0
    res = lower_tcgen05._resident(op)
    if res is not None:
        plan.resident[op] = res
    plan.ncols = max(32, 1 << (s.cols - 1).bit_length())
    em.tcgen05 = plan
    em.scaled[op] = s
    if s.kind == "mxf4nvf4":
        em.ptx_version = "8.7"         # kind::mxf4nvf4 and .scale_vec::4X need PTX ISA 8.7
    em.scaled_loads = {op.lhs, op.rhs.owner.source, op.lhs_scale, op.rhs_scale}
    lower_tcgen05._emit_setup(em, plan)


KERNEL_HOOKS.append(plan_scaled)


# ---------------------------------------------------------------------------- deferred loads


@lowers(T.LoadOp)
def lower_load_deferred(em: KernelEmitter, op: T.LoadOp) -> None:
    """A load feeding a planned block-scaled matmul keeps only its offsets (regs); the
    matmul moves the bytes.  Every other load: `lower_memory.lower_load`."""
    if op.result not in getattr(em, "scaled_loads", ()):
        return _prev_load(em, op)
    offsets = [em.get(o).regs[0] for o in op.offsets]
    em.set(op.result, Val(em.tensors[op.tensor].dtype, None, offsets))


@lowers(T.PermuteOp)
def lower_permute_deferred(em: KernelEmitter, op: T.PermuteOp) -> None:
    if op.source not in getattr(em, "scaled_loads", ()):
        return _prev_permute(em, op)
    em.set(op.result, em.get_any(op.source))


# ---------------------------------------------------------------------------- the matmul


def _row_bytes(em: KernelEmitter, info) -> str:
    """Bytes per row of a packed 2-D fp4 tensor: ceil(dims[1] / 2)."""
    def make():
        r = em.new("r")
        em.ins(f"add.u32 {r}, {info.dims[1]}, 1")
        em.ins(f"shr.u32 {r}, {r}, 1")
        return r
    return em.memo(("fp4_row_bytes", info.ptr), make)


def _pred(em: KernelEmitter, cmp: str, a, b) -> str:
    p = em.new("p")
    em.ins(f"setp.{cmp} {p}, {a}, {b}")
    return p


def _and(em: KernelEmitter, a: str, b: str) -> str:
    p = em.new("p")
    em.ins(f"and.pred {p}, {a}, {b}")
    return p


def _stage_fp4(em: KernelEmitter, ld: T.LoadOp, offsets: list[str], o: Operand, rows: int) -> None:
    """Packed rows [rows, K/2 bytes] of the fp4 tensor -> operand `o` (thread t: row t; the
    rows of `o` past `rows`, an M = 64 tile padded to the 128 rows of the MMA, get zeros)."""
    info = em.tensors[ld.tensor]
    kbytes = o.K * o.esize
    check = ld.boundary_check.value.data != 0
    tid = em.tid
    em.comment(f"fp4 operand: {rows} rows x {kbytes} packed bytes -> smem + {o.offset} (K-major)")
    skip = None
    if o.rows < 128:
        skip = em.label("fp4_rows")
        em.ins(f"@{_pred(em, 'ge.u32', tid, o.rows)} bra {skip}")
    em.push_scope()            # registers memoised under the guard stay inside it
    grow = em.add_u32(offsets[0], tid)
    grow = em.as_reg(grow)
    rowb = _row_bytes(em, info)
    gaddr = em.new("rd")
    kb0 = em.new("r")
    em.ins(f"shr.u32 {kb0}, {offsets[1]}, 1")
    t = em.new("r")
    em.ins(f"mad.lo.u32 {t}, {grow}, {rowb}, {kb0}")
    em.ins(f"cvt.u64.u32 {gaddr}, {t}")
    em.ins(f"add.s64 {gaddr}, {gaddr}, {info.ptr}")
    # smem: (r / 8) * SBO + (r % 8) * 16, plus immediates per byte
    r8, rm = em.new("r"), em.new("r")
    em.ins(f"shr.u32 {r8}, {tid}, 3")
    em.ins(f"and.b32 {rm}, {tid}, 7")
    s = em.new("r")
    em.ins(f"mul.lo.u32 {s}, {r8}, {o.sbo}")
    em.ins(f"mad.lo.u32 {s}, {rm}, 16, {s}")
    em.ins(f"add.u32 {s}, {s}, {em.smem_base}")
    rowp = rem = None
    if rows < o.rows:
        rowp = _pred(em, "lt.u32", tid, rows)
    if check:
        inb = _pred(em, "lt.u32", grow, info.dims[0])
        rowp = inb if rowp is None else _and(em, rowp, inb)
        rem = em.new("r")
        em.ins(f"sub.s32 {rem}, {info.dims[1]}, {offsets[1]}")
    for kb in range(kbytes):
        x = em.new("r")
        em.ins(f"mov.u32 {x}, 0")
        p = _and(em, rowp, _pred(em, "gt.s32", rem, 2 * kb)) if check else rowp
        em.ins(f"{'@' + p + ' ' if p else ''}ld.global.u8 {x}, [{gaddr}+{kb}]")
        em.ins(f"st.shared.u8 [{s}+{o.offset + (kb // 16) * LBO + kb % 16}], {x}")
    em.pop_scope()
    if skip is not None:
        em.place(skip)


def _stage_scales(em: KernelEmitter, ld: T.LoadOp, offsets: list[str], rows: int, nsf: int, words: int,
                  off: int, sdt: dt.DType) -> None:
    """Scale bytes [rows, nsf] -> the tcgen05.cp 32x128b.warpx4 order (thread t: row t; all
    128 rows and 4 * words bytes written: padding outside the tile, 0 past nsf)."""
    info = em.tensors[ld.tensor]
    check = ld.boundary_check.value.data != 0
    pad = int(np.array(ld.padding.value.data, _NP_SCALE[sdt]).view(np.uint8))
    tid = em.tid
    em.comment(f"scale factors: {rows} rows x {nsf} -> smem + {off} (tcgen05.cp 32x128b.warpx4 order)")
    grow = em.as_reg(em.add_u32(offsets[0], tid))
    gaddr, t = em.new("rd"), em.new("rd")
    em.ins(f"cvt.u64.u32 {t}, {grow}")
    em.ins(f"mul.lo.u64 {t}, {t}, {info.strides[0]}")
    em.ins(f"add.s64 {gaddr}, {info.ptr}, {t}")
    c = em.new("rd")
    em.ins(f"cvt.u64.u32 {c}, {offsets[1]}")
    em.ins(f"add.s64 {gaddr}, {gaddr}, {c}")
    rowp = _pred(em, "lt.u32", tid, rows)
    if check:
        rowp = _and(em, rowp, _pred(em, "lt.u32", grow, info.dims[0]))
        rem = em.new("r")
        em.ins(f"sub.s32 {rem}, {info.dims[1]}, {offsets[1]}")
    s, q = em.new("r"), em.new("r")
    em.ins(f"and.b32 {s}, {tid}, 31")
    em.ins(f"shr.u32 {q}, {tid}, 5")
    em.ins(f"shl.b32 {s}, {s}, 4")
    em.ins(f"mad.lo.u32 {s}, {q}, 4, {s}")
    em.ins(f"add.u32 {s}, {s}, {em.smem_base}")
    for j in range(4 * words):
        x = em.new("r")
        if j < nsf:
            em.ins(f"mov.u32 {x}, {pad}")
            p = _and(em, rowp, _pred(em, "gt.s32", rem, j)) if check else rowp
            em.ins(f"@{p} ld.global.u8 {x}, [{gaddr}+{j}]")
        else:
            em.ins(f"mov.u32 {x}, 0")
        em.ins(f"st.shared.u8 [{s}+{off + (j // 4) * SF_WORD_BYTES + j % 4}], {x}")


@lowers(T.ScaledMatmulOp)
def lower_scaled_matmul(em: KernelEmitter, op: T.ScaledMatmulOp) -> None:
    s: Scaled | None = getattr(em, "scaled", {}).get(op)
    if s is None:
        from .emitter import dtype_of
        raise em.unsupported("tile.scaled_matmul", dtype_of(op.lhs.type),
                             "tcgen05 block_scale needs lhs/rhs loads of 2-D packed fp4 tensors (rhs a transposed "
                             "[N, K] load), scale loads, M = 128, N % 8 == 0 and N <= 128, K % 64 == 0, 4 warps")
    plan: lower_tcgen05.Plan = em.tcgen05
    g, col = s.g, plan.column[op]
    resident = op in plan.resident
    acc_zero = op.acc is None or lower_tcgen05._is_zero(op.acc)
    acc_in = not resident and not acc_zero
    em.reserve_smem(s.smem_bytes(em.num_threads, acc_in))
    em.comment(f"tcgen05 block-scaled matmul {s.M}x{s.N}x{s.K} kind::{s.kind} (block {s.block}, "
               f"{s.sdt.name} scales): D in TMEM columns [{col}, {col + s.N}), SFA [{s.sfa_col}, {s.sfb_col}), "
               f"SFB [{s.sfb_col}, {s.cols}){', accumulator resident in TMEM' if resident else ''}")
    a_ld, b_ld = op.lhs.owner, op.rhs.owner.source.owner
    em.bar()
    _stage_fp4(em, a_ld, em.get_any(op.lhs).regs, s.A, s.M)
    _stage_fp4(em, b_ld, em.get_any(op.rhs).regs, s.B, s.N)
    nsf = s.K // s.block
    _stage_scales(em, op.lhs_scale.owner, em.get_any(op.lhs_scale).regs, s.M, nsf, s.words, s.sfa_off, s.sdt)
    _stage_scales(em, op.rhs_scale.owner, em.get_any(op.rhs_scale).regs, s.N, nsf, s.words, s.sfb_off, s.sdt)
    if acc_in:
        store_c(em, em.get(op.acc), g, s.off_c)
    em.ins("fence.proxy.async.shared::cta")
    em.ins("tcgen05.fence::before_thread_sync")
    em.bar()
    if acc_in:
        smem_to_tmem(em, g, plan.taddr_q, col, s.off_c)
        em.ins("tcgen05.fence::before_thread_sync")
        em.bar()
    _issue(em, s, col, first_overwrites=acc_zero and not resident)
    lower_tcgen05._wait_mma(em)
    if resident:
        em.set(op.result, em.get(op.acc))
        return
    em.set(op.result, read_back(em, g, plan.taddr_q, col, em.layout_of(op.result.type)))


def _sf_desc(em: KernelEmitter, off: int) -> str:
    desc = Sm100ScaleFactorSmemDescriptor.at(0)
    t, r = em.new("r"), em.new("rd")
    em.ins(f"add.u32 {t}, {em.smem_base}, {off}")
    em.ins(f"shr.u32 {t}, {t}, 4")
    em.ins(f"and.b32 {t}, {t}, 16383")
    em.ins(f"cvt.u64.u32 {r}, {t}")
    em.ins(f"or.b64 {r}, {r}, {desc.ptx()}")
    return r


def _issue(em: KernelEmitter, s: Scaled, col: int, first_overwrites: bool) -> None:
    """Thread 0: scale factors smem -> TMEM (tcgen05.cp), the MMAs, the commit."""
    plan: lower_tcgen05.Plan = em.tcgen05
    skip = em.label("tc_issued")
    em.ins(f"@{lower_tcgen05._not_thread0(em)} bra {skip}")
    em.push_scope()
    em.ins("tcgen05.fence::after_thread_sync")
    sf_cols = {}
    for name, off, c0 in (("a", s.sfa_off, s.sfa_col), ("b", s.sfb_off, s.sfb_col)):
        for w in range(s.words):
            desc = _sf_desc(em, off + w * SF_WORD_BYTES)
            ta = em.new("r")
            em.ins(f"add.u32 {ta}, {plan.taddr}, {c0 + 4 * w}")
            em.ins(f"tcgen05.cp.cta_group::1.32x128b.warpx4 [{ta}], {desc}")
            sf_cols[name, w] = ta
    adesc = lower_tcgen05._desc_reg(em, s.A, "A")
    bdesc = lower_tcgen05._desc_reg(em, s.B, "B")
    d = em.new("r")
    em.ins(f"add.u32 {d}, {plan.taddr}, {col}")
    first = first_overwrites
    for ks in range(s.K // 64):
        j0 = ks * 64 // s.block
        w, sf_id = j0 // 4, j0 % 4
        idesc = Sm100BlockScaledInstrDescriptor.for_mma(s.kind, _SF_PTX[s.sdt], M=128, N=s.N, sfa_id=sf_id,
                                                        sfb_id=sf_id, block=s.block)
        em.comment(f"K step {ks}: idesc {idesc}")
        ra = lower_tcgen05._desc_plus(em, adesc, ks * 2 * LBO)
        rb = lower_tcgen05._desc_plus(em, bdesc, ks * 2 * LBO)
        en = plan.p_false if first else plan.p_true
        first = False
        em.ins(f"tcgen05.mma.cta_group::1.kind::{s.kind}.{s.suffix} [{d}], {ra}, {rb}, {idesc.ptx()}, "
               f"[{sf_cols['a', w]}], [{sf_cols['b', w]}], {en}")
    em.ins(f"tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64 [{plan.mbar}]")
    em.pop_scope()
    em.place(skip)
