"""Which kind::f8f6f4 K loops (fp4 / fp6 / fp8 operands) TMA can feed (`tcgen05_pipeline.py`),
the run-time test that picks between that pipeline and the direct copy (`tcgen05_direct.py`),
and the in-place packing of fp6 operands (`repack_role`).

TMA's packed 4-bit type ``CU_TENSOR_MAP_DATA_TYPE_16U4_ALIGN16B`` (PTX ``.b4x16_p64``) reads
fp4 rows packed two per byte (`ct.fp4_tensor`, element 2j in the low nibble) and writes every
16 elements to their own 16 bytes of shared memory, 8 bytes of data then 8 of padding: the
layout `tcgen05.mma kind::f8f6f4` reads e2m1 operands in.  So an fp4 operand becomes a
1-byte-per-element image, exactly like an fp8 one, and the f16 pipeline's machinery (stage
buffers, full / empty mbarriers, producer warp 0, MMA warp 1) carries it with both operands
K-major, 128B-swizzled, K32 per MMA.  fp8 operands ride along as UINT8.

fp6 operands: kernel arguments hold one fp6 code per byte (`tilec/fp6.py`), while the packed
``16U6_ALIGN16B`` type reads *dense* rows (4 values in 3 bytes).  So fp6 tiles come by TMA as
UINT8 (16 codes per 16 bytes, the same 128B-swizzled positions) and the warps the pipeline
leaves free (2..) pack each 16-byte chunk in place into its first 12 bytes (the padded
``.b6x16_p32`` group), `fence.proxy.async`, and arrive on a third barrier `ready[s]` that the
MMA warp waits for instead of `full[s]`.  The 128B swizzle moves whole 16-byte chunks, so a
chunk's packed group lands exactly where the MMA looks for it.

Transaction bytes (`Pipeline.tx_bytes`): the mbarrier counts what TMA *reads*: K / 2 bytes a
row for a 16U4_ALIGN16B box although it fills K bytes of shared memory (DeepGEMM's sm100
fp8 x fp4 GEMM expects half the unpacked smem size for its fp4 operand; the simulator's
`SimTensorMap.tx_bytes` counts the same), K bytes for UINT8 boxes.

The driver's rules for the packed types (`cuTensorMapEncodeTiled`, CUDA 12.8+):

    global address 32-byte aligned    globalDim[0] a multiple of 128    strides multiple of 32 B
    boxDim[0] == 128                  swizzle NONE / 128B / 128B_ATOM_32B (loads)    OOB fill zero

so the pipeline takes K loops whose operands are K-major (A [M, K]; B given as [N, K] and used
as `b.T`), BK a multiple of 128 (one 128-element box per 128 k, one 128-byte swizzle span),
BM, BN <= 256 (box rows) and zero padding (TMA fills zeros).  Whether the tensor's base is
32-byte aligned and its K extent a multiple of 128 is known only at launch: the kernel tests
``ptr % 32 == 0 && K % 128 == 0`` for both operands (`guard`) and otherwise runs the loop
with the direct copy; the launch builds the tensor maps only when the same test passes
(`tilec.runtime.launch.tma_ready`, role suffix "k128"), and hands over unused bytes otherwise.
For a contiguous row of K % 128 == 0 fp4 elements the pitch K / 2 is a multiple of 64 bytes,
for fp8 K bytes a multiple of 128: the stride rule follows.

Not fed by TMA (the direct copy stays): B given as [K, N] (TMA would group 16 consecutive *n*,
an MN-major sub-byte operand, which this backend and its simulator do not use), BK % 128 != 0,
BM / BN > 256, single matmuls outside a K loop, loops doing anything else with tiles.
"""

from __future__ import annotations

from xdsl.dialects import scf
from xdsl.ir import BlockArgument

from tilec import dtypes as dt
from tilec.dialects import tile as T

from .emitter import KernelEmitter
from .tcgen05_layout import SMEM_LIMIT, Geometry, Source

#: operand dtype -> tensor-map data type of its TMA copy (`tilec.runtime.cuda._TMA_DTYPES` names)
TMA_DTYPE = {dt.float4_e2m1fn: "16u4_align16b", dt.float8_e4m3fn: "u8", dt.float8_e5m2: "u8",
             dt.float6_e2m3fn: "u8", dt.float6_e3m2fn: "u8"}
BOX_K = 128              # boxDim[0] of the packed types; also the 128-byte swizzle span
GUARD_ALIGN = 32         # global address alignment of the packed types


def role_dtype(src: Source) -> str:
    """The tensor-map data type of operand `src`'s TMA copy."""
    return TMA_DTYPE[src.dtype]


def _takes(em: KernelEmitter, src: Source, loop: scf.ForOp) -> bool:
    """TMA can copy operand `src`: a K-major load of a 2-D kernel argument of a TMA type, in
    the loop body, zero padding, no static dim that breaks the driver's rules."""
    ld = src.load
    t = ld.tensor
    if src.dtype not in TMA_DTYPE or src.rows_axis != 0 or ld.parent_block() is not loop.body.block:
        return False
    if not isinstance(t, BlockArgument) or t.owner is not em.func.body.block or len(t.type.get_shape()) != 2:
        return False
    if float(ld.padding.value.data) != 0.0:
        return False
    inner = em.tensors[t].dims[1]
    return not isinstance(inner, int) or inner % BOX_K == 0


def match_f8f6f4(em: KernelEmitter, loop: scf.ForOp, matmul: T.MatmulOp, g: Geometry):
    """The `tcgen05_pipeline.Pipeline` of a kind::f8f6f4 K loop whose operands TMA can feed
    (the module docstring), or None (the loop keeps the direct copy)."""
    from .tcgen05_pipeline import STAGE_BUDGET, MAX_STAGES, Pipeline

    a, b = g.sources
    if a.load is b.load:
        return None
    if not (_takes(em, a, loop) and _takes(em, b, loop)):
        return None
    if g.K % BOX_K or g.K > 256 or g.M > 256 or g.N > 256:
        return None
    body = loop.body.block
    chain = {v.owner for s in (a, b) for v in s.deferred}
    for op in body.ops:   # nothing else may touch tiles or memory: only scalar index math
        if op in chain or op is matmul or op is body.last_op:
            continue
        if op.regions or isinstance(op, (T.StoreOp, T.LoadOp)) or any(
                isinstance(v.type, (T.TileType, T.TensorType)) for v in (*op.operands, *op.results)):
            return None
    pipe = Pipeline(loop, matmul, a.load, b.load, g, BOX_K, BOX_K, sources=(a, b))
    # static stage buffers next to the dynamic scratch of the read-back and of the fallback's direct copy
    budget = min(STAGE_BUDGET, SMEM_LIMIT - g.smem_bytes(em.num_threads, False) - 32 * 1024)
    pipe.stages = min(MAX_STAGES, budget // pipe.stage_bytes)
    return pipe if pipe.stages >= 2 else None


def guard(em: KernelEmitter, pipe) -> str | None:
    """A predicate register: every TMA-fed tensor of `pipe` has a 32-byte aligned base and a
    K extent that is a multiple of 128 (uniform across the CTA); None when no test is needed."""
    p = None
    for load in (pipe.a_load, pipe.b_load):
        info = em.tensors[load.tensor]
        t, q = em.new("rd"), em.new("p")
        em.ins(f"and.b64 {t}, {info.ptr}, {GUARD_ALIGN - 1}")
        em.ins(f"setp.eq.u64 {q}, {t}, 0")
        p = q if p is None else _and(em, p, q)
        inner = info.dims[1]
        if not isinstance(inner, int):
            r, q = em.new("r"), em.new("p")
            em.ins(f"and.b32 {r}, {inner}, {BOX_K - 1}")
            em.ins(f"setp.eq.u32 {q}, {r}, 0")
            p = _and(em, p, q)
    return p


def _and(em: KernelEmitter, a: str, b: str) -> str:
    p = em.new("p")
    em.ins(f"and.pred {p}, {a}, {b}")
    return p


def repack_role(em: KernelEmitter, pipe, cnt: str) -> None:
    """One iteration of the fp6 repacking role (threads 64..): wait until TMA filled stage s
    (`full[s]`), then, for every 16-byte chunk of each fp6 operand region (16 codes, one per
    byte, 128B-swizzled: the swizzle moves whole 16-byte chunks, so the packed group stays where
    its codes were), write the 16 codes packed little-endian into the chunk's first 12 bytes
    (the padding after them is left as is); fence the generic writes for the async proxy and
    arrive on `ready[s]`, which the MMA warp waits for."""
    from .tcgen05_direct import _insert
    from .tcgen05_pipeline import _bar_addr, _stage, _wait

    s, ph = _stage(em, pipe, cnt)
    _wait(em, _bar_addr(em, pipe.full, s), ph)
    base, me = em.new("r"), em.new("r")
    em.ins(f"mov.u32 {base}, {pipe.buf}")
    em.ins(f"mad.lo.u32 {base}, {s}, {pipe.stage_bytes}, {base}")
    em.ins(f"sub.u32 {me}, {em.tid}, 64")
    em.ins(f"shl.b32 {me}, {me}, 4")
    step = (em.num_threads - 64) * 16
    for off, nbytes in pipe.repack:
        at, end = em.new("r"), em.new("r")
        em.ins(f"add.u32 {at}, {base}, {off}")
        em.ins(f"add.u32 {end}, {at}, {nbytes}")
        em.ins(f"add.u32 {at}, {at}, {me}")
        head, done, p = em.label("tc_repack"), em.label("tc_repack_done"), em.new("p")
        em.place(head)
        em.ins(f"setp.ge.u32 {p}, {at}, {end}")
        em.ins(f"@{p} bra {done}")
        w = [em.new("r") for _ in range(4)]
        o = [em.new("r") for _ in range(3)]
        em.ins(f"ld.shared.v4.b32 {{{', '.join(w)}}}, [{at}]")
        for r in o:
            em.ins(f"mov.b32 {r}, 0")
        for i in range(16):
            c = em.new("r")
            em.ins(f"bfe.u32 {c}, {w[i // 4]}, {8 * (i % 4)}, 6")
            _insert(em, o, c, 6 * i, 6)
        em.ins(f"st.shared.v2.b32 [{at}], {{{o[0]}, {o[1]}}}")
        em.ins(f"st.shared.b32 [{at}+8], {o[2]}")
        em.ins(f"add.u32 {at}, {at}, {step}")
        em.ins(f"bra {head}")
        em.place(done)
    em.ins("fence.proxy.async.shared::cta")
    em.ins(f"mbarrier.arrive.shared::cta.b64 _, [{_bar_addr(em, pipe.ready, s)}]")
    em.ins(f"add.u32 {cnt}, {cnt}, 1")
