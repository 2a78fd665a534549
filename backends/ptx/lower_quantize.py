"""`tile.quantize` and `tile.dequantize` (block scaling along the last axis) on every target.

The numbers are `tilec.fp4`'s bit for bit (the CPU backend's): see `tilec/fp4.py` for the
rules.  Both need a tile whose canonical layout has 4-element chunks (`layout.py`; true
when the block size is a multiple of 4, as MX's 32 and NV's 16 are).

**quantize.**  A block of `block` elements is `g = block / 4` consecutive chunks: the same
slots of g consecutive lanes of one warp (g divides 32).  Each thread folds its chunk's
|x| with `max.NaN.f32` (NaN propagates, as numpy's max), then `log2 g` butterfly shuffles
give every lane of the group the block's amax.  The scale, per chunk:

* ue8m0 (MX): E = amax's f32 exponent field; code = 255 if E = 255 (inf/NaN) else
  max(E - 2, 0) (= floor(log2 amax) - 2 + 127, clamped; zero and subnormal amax give
  2^-127); q = x * rcp.rn(scale), exact as x / scale for a power of two;
* e4m3 (NV, sm_90a+): scale = e4m3(div.rn(amax, 6)) via `cvt.rn.satfinite.e4m3x2.f32`
  (saturates at 448, NaN stays NaN, as the CPU's min-then-round); q = div.rn(x, scale),
  or 0 where the scale is not > 0;

then q is rounded to e2m1 (`fp4_codes.round_e2m1`: compares on sm_80/sm_90a, `cvt` on
sm_100a).  The group's first lane writes the scale to shared memory and the scales tile
is read back in its own canonical layout.

    // x: 64x32 f32, block 32 (8 lanes per block), chunk 0 of thread t:
    abs.f32 %f4, %f0; ... max.NaN.f32 %f7, %f6, %f5          // amax of the 4 slots
    shfl.sync.bfly.b32 %f8, %f7, 1, 31, -1; max.NaN.f32 %f9, %f7, %f8    // then 2, 4
    mov.b32 %r1, %f13; shr.u32 %r1, %r1, 23; sub.s32 %r2, %r1, 2; max.s32 %r2, %r2, 0; ...
    rcp.rn.f32 %f15, %f14; mul.rn.f32 %f16, %f0, %f15; <round to e2m1>
    @%p3 st.shared.f32 [%r9+0], %f14; bar.sync 0; ld.shared.f32 %f30, [%r10+0]   // scales

**dequantize.**  Each chunk multiplies its 4 values by its one scale (exact in f32), then
rounds to the result dtype.  Where the scales are a load of a tensor the kernel never stores
to (the FP4 KV cache), each chunk's thread reads its scale from global memory itself
(`_reload_scales`); otherwise the scales tile goes to shared memory (`exchange.store_any`)
and each chunk reads its scale (element index / block) there:

    bar.sync 0; st.shared.f32 [%r3+0], %f1; bar.sync 0
    shr.u32 %r4, %r0, 3; ld.shared.f32 %f5, [%r6+0]            // scale of this chunk
    mul.rn.f32 %f7, %f2, %f5; ...
"""

from __future__ import annotations

from tilec import dtypes as dt
from tilec.dialects import tile as T

from . import exchange as X
from . import fp4_codes as C
from . import numerics as N
from . import vectorize as V
from .emitter import KernelEmitter, Val, dtype_of, lowers
from .layout import Blocked
from .lower_grid import constant_reg
from .ptx_types import f32_imm


def _f32(em: KernelEmitter, d: dt.DType, x: str) -> str:
    if d.is_float and d.bits <= 32:
        return x
    return N.cast(em, d, dt.float32, x)


def _chunk_ok(em: KernelEmitter, layout: Blocked, block: int) -> bool:
    g = block // 4
    return (layout.vec == 4 and block % 4 == 0 and g & (g - 1) == 0 and g <= 32
            and (layout.num_threads * 4) % block == 0)


def _mx_scale(em: KernelEmitter, amax: str) -> str:
    bits, code, p = em.new("r"), em.new("r"), em.new("p")
    em.ins(f"mov.b32 {bits}, {amax}")
    em.ins(f"shr.u32 {bits}, {bits}, 23")
    em.ins(f"sub.s32 {code}, {bits}, 2")
    em.ins(f"max.s32 {code}, {code}, 0")
    em.ins(f"setp.eq.u32 {p}, {bits}, 255")
    em.ins(f"selp.b32 {code}, 255, {code}, {p}")
    return C.decode_e8m0(em, code)


def _nv_scale(em: KernelEmitter, amax: str) -> str:
    t = N.fop(em, "div.rn.f32", amax, f32_imm(6.0))
    return N.round_narrow(em, dt.float8_e4m3fn, t)       # cvt.rn.satfinite.e4m3x2: 448 max, NaN kept


@lowers(T.QuantizeOp)
def lower_quantize(em: KernelEmitter, op: T.QuantizeOp) -> None:
    x = em.get(op.source)
    lay, block = x.layout, op.block.value.data
    sd = dtype_of(op.scales.type)
    if not _chunk_ok(em, lay, block):
        raise em.unsupported("tile.quantize", x.dtype, f"block {block} with a {list(lay.shape)} tile; needs "
                             "4-element chunks and block / 4 a power of two up to 32")
    if sd is dt.float8_e4m3fn:
        em.require_sm(90, "tile.quantize to float8_e4m3fn scales", x.dtype)
    g = block // 4
    src = [_f32(em, x.dtype, r) for r in x.regs]
    q: list = []
    chunk_scales = []
    zero = constant_reg(em, dt.float32, 0.0)
    for k in range(lay.chunks_per_thread):
        s0 = 4 * k
        if lay.slot_never_valid(s0):
            q += [zero] * 4
            chunk_scales.append(None)
            continue
        vals = src[s0:s0 + 4]
        amax = N.fop(em, "abs.f32", vals[0])
        for v in vals[1:]:
            amax = N.fop(em, "max.NaN.f32", amax, N.fop(em, "abs.f32", v))
        m = 1
        while m < g:
            other = em.new("f")
            em.ins(f"shfl.sync.bfly.b32 {other}, {amax}, {m}, 31, -1")
            amax = N.fop(em, "max.NaN.f32", amax, other)
            m *= 2
        if sd is dt.float8_e8m0fnu:
            scale = _mx_scale(em, amax)
            r = N.fop(em, "rcp.rn.f32", scale)
            scaled = [N.fop(em, "mul.rn.f32", v, r) for v in vals]
        else:
            scale = _nv_scale(em, amax)
            pos = em.new("p")
            em.ins(f"setp.gt.f32 {pos}, {scale}, {N.ZERO}")
            scaled = []
            for v in vals:
                t, out = N.fop(em, "div.rn.f32", v, scale), em.new("f")
                em.ins(f"selp.f32 {out}, {t}, {N.ZERO}, {pos}")
                scaled.append(out)
        q += [C.round_e2m1(em, v) for v in scaled]
        chunk_scales.append(scale)
    em.set(op.result, Val(dtype_of(op.result.type), lay, q))
    em.set(op.scales, _scales_tile(em, op, lay, block, chunk_scales, sd))


def _scales_tile(em: KernelEmitter, op, lay: Blocked, block: int, chunk_scales: list, sd) -> Val:
    """The scales in the canonical layout of their tile: the first lane of each block's
    group writes its scale to shared memory, then every thread reads its slots."""
    slay = em.layout_of(op.scales.type)
    g = block // 4
    em.reserve_smem(slay.numel * 4)
    em.bar()
    lead = None
    if g > 1:
        lane, lead = em.new("r"), em.new("p")
        em.ins(f"and.b32 {lane}, {em.tid}, {g - 1}")
        em.ins(f"setp.eq.u32 {lead}, {lane}, 0")
    idx0 = em.div_u32(em.tid, g)                                                 # tid * 4 / block
    for k, scale in enumerate(chunk_scales):
        if scale is None:
            continue
        pred = X._and(em, em.slot_pred(lay, 4 * k), lead)
        addr = em.new("r")
        em.ins(f"mad.lo.u32 {addr}, {em.as_reg(idx0)}, 4, {em.smem_base}")
        imm = k * lay.num_threads * 4 // block * 4
        em.ins(f"{'@' + pred + ' ' if pred else ''}st.shared.f32 [{addr}+{imm}], {scale}")
    em.bar()
    regs = X.load_f32_tile(em, slay, X.thread_base(em, slay, 4, 0))
    return Val(sd, slay, regs)


def _reload_scales(em: KernelEmitter, op: T.DequantizeOp, lay: Blocked, block: int) -> list | None:
    """Per slot of the dequantized tile (layout `lay`, 4-element chunks), its scale read from
    global memory at the chunk's own coordinates, when the scales are a `tile.load` (maybe
    through a reshape that only adds or drops size-1 dims) of a tensor the kernel never
    stores to, in the same block: the chunk's thread loads the byte itself (the lanes of one
    block read one address, an L1 broadcast) instead of the scales tile going through shared
    memory.  None otherwise.

        before: bar.sync; st.shared (scales tile); bar.sync; ld.shared per chunk
        after:  ld.global.u8 per chunk (+ the ue8m0 / e4m3 decode); no bar.sync
    """
    from . import fp4_memory as F
    from .lower_memory import _and, _never_written, element_access, load_element
    from .lower_shape import _squeeze_only

    v = op.scales
    src = v.owner
    if isinstance(src, T.ReshapeOp) and _squeeze_only(src):
        src = src.source.owner
    if not isinstance(src, T.LoadOp) or src.parent_block() is not op.parent_block() \
            or not _never_written(em, src.tensor) or src.tensor not in em.tensors:
        return None
    info = em.tensors[src.tensor]
    d = info.dtype
    if d is not F.E8M0 and d is not dt.float8_e4m3fn:
        return None
    if not (lay.is_pow2 and lay.numel >= lay.num_threads * lay.vec):
        return None
    from .exchange import pow2_coords

    offsets = [em.get(o).regs[0] for o in src.offsets]
    check = src.boundary_check.value.data != 0
    pad = src.padding.value.data
    load_shape = tuple(src.result.type.get_shape())
    sshape = v.type.get_shape()
    lb = block.bit_length() - 1

    def to_load(sc):      # scales-tile coordinates -> the load's tile coordinates
        it = iter([x for x, n in zip(sc, sshape) if n != 1])
        return [0 if n == 1 else next(it) for n in load_shape]

    # coordinate = this thread's part + the slot's constant part (disjoint bits, `pow2_coords`)
    c0 = pow2_coords(em, lay, 0)
    base = to_load(list(c0[:-1]) + [em.div_u32(c0[-1], block)])
    if d is F.E8M0:
        addr0, _, _ = F.byte_access(em, info, offsets, base, False)
    else:
        addr0, _ = element_access(em, info, offsets, base, False)
    zero = constant_reg(em, dt.float32, 0.0)
    chunks = []             # (first slot, offset of the chunk's scale from the base, in load coordinates)
    for k in range(lay.chunks_per_thread):
        if not lay.slot_never_valid(4 * k):
            const = lay.slot_const(4 * k)
            delta = []
            for dim in range(len(lay.shape)):
                bits = lay.dim_bits(dim)
                delta.append((const >> bits.start) & ((1 << len(bits)) - 1) if len(bits) else 0)
            chunks.append((4 * k, tuple(to_load(delta[:-1] + [delta[-1] >> lb]))))

    def read(checked: bool) -> list:
        got: dict = {}
        for s0, delta in chunks:
            pred = em.slot_pred(lay, s0)
            if checked:
                for o, b, dd, dim in zip(offsets, base, delta, info.dims):
                    g = em.as_reg(em.add_u32(em.add_u32(o, b), dd))
                    pred = _and(em, pred, em.memo(("lt", g, dim), lambda g=g, dim=dim: F._lt(em, g, dim)))
            if (delta, pred) in got:
                continue
            addr = addr0
            for dd, st in zip(delta, info.strides):
                if dd:
                    nxt = em.new("rd")
                    if isinstance(st, int):
                        em.ins(f"add.u64 {nxt}, {addr}, {dd * st}")
                    else:
                        em.ins(f"mad.lo.u64 {nxt}, {st}, {dd}, {addr}")
                    addr = nxt
            if d is F.E8M0:
                got[delta, pred] = C.decode_e8m0(em, F._ld_byte(em, addr, pred, F._pad_code(d, pad)))
            else:
                got[delta, pred] = load_element(em, d, addr, pred, pad)
        return list(dict.fromkeys(got.values()))

    # which register each chunk reads: the same in both paths (one per distinct (delta, pred))
    keys = list(dict.fromkeys((delta, em.slot_pred(lay, s0)) for s0, delta in chunks))
    full = V.full_tile(em, info, list(src.offsets), offsets, load_shape) if check else True
    if full is True:
        regs = read(False)
    elif full is False:
        regs = read(True)
    else:       # a CTA-uniform branch: unpredicated reads for a tile inside the tensor
        from .lower_memory import _two_paths

        regs = _two_paths(em, full, lambda: read(False), lambda: read(True), ["f"] * len(keys))
    which = dict(zip(keys, regs))
    per_slot = [zero] * lay.num_slots
    for s0, delta in chunks:
        per_slot[s0:s0 + 4] = [which[delta, em.slot_pred(lay, s0)]] * 4
    return per_slot


@lowers(T.DequantizeOp)
def lower_dequantize(em: KernelEmitter, op: T.DequantizeOp) -> None:
    q = em.get(op.source)
    s = em.get_any(op.scales)
    lay, block = q.layout, op.block.value.data
    out_d = dtype_of(op.result.type)
    reloaded = None if s.uniform or not _chunk_ok(em, lay, block) else _reload_scales(em, op, lay, block)
    if s.uniform:
        per_slot = [s.regs[0]] * lay.num_slots
    elif reloaded is not None:
        per_slot = reloaded
    elif _chunk_ok(em, lay, block):
        em.reserve_smem(X.numel_of(s.layout) * 4)
        em.bar()
        X.store_any(em, s, 0)
        em.bar()
        idx0 = em.div_u32(em.mul_u32(em.tid, 4), block)
        addr = em.new("r")
        em.ins(f"mad.lo.u32 {addr}, {em.as_reg(idx0)}, 4, {em.smem_base}")
        per_slot = []
        zero = constant_reg(em, dt.float32, 0.0)
        for k in range(lay.chunks_per_thread):
            if lay.slot_never_valid(4 * k):
                per_slot += [zero] * 4
                continue
            pred = em.slot_pred(lay, 4 * k)
            r = em.new("f")
            if pred:
                em.ins(f"mov.f32 {r}, {N.ZERO}")
            imm = k * lay.num_threads * 4 // block * 4
            em.ins(f"{'@' + pred + ' ' if pred else ''}ld.shared.f32 {r}, [{addr}+{imm}]")
            per_slot += [r] * 4
    else:
        sshape = tuple(s.layout.shape)

        def index_of(c):
            return X.linear_index(em, sshape, list(c[:-1]) + [em.div_u32(c[-1], block)])
        per_slot = X.gather(em, s, lay, index_of).regs
    regs = []
    for qv, sv in zip(q.regs, per_slot):
        v = N.fop(em, "mul.rn.f32", _f32(em, q.dtype, qv), _f32(em, s.dtype, sv))
        regs.append(N.finish(em, out_d, v) if out_d.bits < 32 else v)
    if out_d.bits == 64:
        regs = [N.cast(em, dt.float32, out_d, r) for r in regs]
    em.set(op.result, Val(out_d, lay, regs))
