"""`tile.matmul` on tensor cores with `mma.sync.aligned.m16n8k16` (f16 / bf16 in, f32 out).

Chosen by `lower_matmul.select_mma` for 2-D tiles with M % 16 == N % 8 == K % 16 == 0.
The operands are staged in shared memory in the layouts `ldmatrix` reads (the
sequence checked on the H100, PTX_FACTS.md section 4):

    smem[offA] = A   (M x K, row-major, 16-bit)     ldmatrix.x4: a0..a3 of a 16x16 A block
    smem[offB] = B^T (N x K, row-major, 16-bit)     ldmatrix.x2: b0, b1 of a 16x8 (k x n) B block
    smem[offC] = C   (M x N, row-major, f32)        the accumulator, in and out

The (M/16) x (N/8) output tiles go round-robin to the warps; for its tile (m0, n0) a
lane (g = lane / 4, c = lane % 4) holds C[m0 + g, n0 + 2c + {0,1}] and
C[m0 + g + 8, n0 + 2c + {0,1}].  Per 16-wide k step:

    ldmatrix.sync.aligned.m8n8.x4.shared.b16 {a0, a1, a2, a3}, [A + ((m0 + lane % 16) * K + k + (lane / 16) * 8) * 2]
    ldmatrix.sync.aligned.m8n8.x2.shared.b16 {b0, b1}, [B^T + ((n0 + lane % 8) * K + k + (lane / 8 % 2) * 8) * 2]
    mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {d0..d3}, {a0..a3}, {b0, b1}, {d0..d3}

Finally every thread reads its blocked-layout slots of C back from shared memory.
"""

from __future__ import annotations

from tilec import dtypes as dt
from tilec.dialects import tile as T

from . import numerics as N
from .emitter import KernelEmitter, Val
from .exchange import load_f32_tile, store_tile, thread_base

MMA_TYPES = {dt.float16: "f16", dt.bfloat16: "bf16"}


def mma_fits(a_shape, b_shape, d: dt.DType) -> bool:
    """Whether `mma.sync.m16n8k16` can compute this product (2-D, f16/bf16, tile sizes)."""
    if d not in MMA_TYPES or len(a_shape) != 2 or len(b_shape) != 2:
        return False
    (M, K), (_, Nn) = a_shape, b_shape
    return M % 16 == 0 and Nn % 8 == 0 and K % 16 == 0


def lower_matmul_mma(em: KernelEmitter, op: T.MatmulOp) -> None:
    a, b = em.get(op.lhs), em.get(op.rhs)
    d = a.dtype
    ty = MMA_TYPES[d]
    (M, K), (_, Nn) = a.layout.shape, b.layout.shape
    off_b = (M * K * 2 + 15) // 16 * 16
    off_c = off_b + (Nn * K * 2 + 15) // 16 * 16
    em.reserve_smem(off_c + M * Nn * 4)
    c_layout = em.layout_of(op.result.type)

    em.bar()
    _store_a(em, a, ty)
    _store_bt(em, b, ty, K, off_b)
    if op.acc is not None:
        store_tile(em, em.get(op.acc), off_c)
    em.bar()

    warp, lane = em.new("r"), em.new("r")
    em.ins(f"shr.u32 {warp}, {em.tid}, 5")
    em.ins(f"and.b32 {lane}, {em.tid}, 31")
    g, c = em.new("r"), em.new("r")
    em.ins(f"shr.u32 {g}, {lane}, 2")
    em.ins(f"and.b32 {c}, {lane}, 3")
    # per-lane parts of the ldmatrix row addresses and of the fragment's C address
    a_lane = em.new("r")   # ((lane % 16) * K + (lane / 16) * 8) * 2
    t1, t2 = em.new("r"), em.new("r")
    em.ins(f"and.b32 {t1}, {lane}, 15")
    em.ins(f"shr.u32 {t2}, {lane}, 4")
    em.ins(f"mul.lo.u32 {t2}, {t2}, 8")
    em.ins(f"mad.lo.u32 {a_lane}, {t1}, {K}, {t2}")
    em.ins(f"shl.b32 {a_lane}, {a_lane}, 1")
    b_lane = em.new("r")   # ((lane % 8) * K + (lane / 8 % 2) * 8) * 2
    t3, t4 = em.new("r"), em.new("r")
    em.ins(f"and.b32 {t3}, {lane}, 7")
    em.ins(f"bfe.u32 {t4}, {lane}, 3, 1")
    em.ins(f"mul.lo.u32 {t4}, {t4}, 8")
    em.ins(f"mad.lo.u32 {b_lane}, {t3}, {K}, {t4}")
    em.ins(f"shl.b32 {b_lane}, {b_lane}, 1")
    c_lane = em.new("r")   # (g * N + 2c) * 4
    em.ins(f"shl.b32 {t1}, {c}, 1")
    em.ins(f"mad.lo.u32 {c_lane}, {g}, {Nn}, {t1}")
    em.ins(f"shl.b32 {c_lane}, {c_lane}, 2")

    tiles_n = Nn // 8
    total = (M // 16) * tiles_n
    W = em.num_warps
    for i in range(-(-total // W)):
        skip = em.label("mma_skip")
        t = em.new("r")
        em.ins(f"add.u32 {t}, {warp}, {i * W}")
        if (i + 1) * W > total:  # warp-uniform: the whole warp skips or runs the tile
            p = em.new("p")
            em.ins(f"setp.ge.u32 {p}, {t}, {total}")
            em.ins(f"@{p} bra {skip}")
        tm, tn = em.new("r"), em.new("r")
        em.ins(f"div.u32 {tm}, {t}, {tiles_n}")
        em.ins(f"rem.u32 {tn}, {t}, {tiles_n}")
        a_addr, b_addr, c_addr = em.new("r"), em.new("r"), em.new("r")
        em.ins(f"mad.lo.u32 {a_addr}, {tm}, {16 * K * 2}, {a_lane}")       # m0 = 16 tm
        em.ins(f"add.u32 {a_addr}, {a_addr}, {em.smem_base}")
        em.ins(f"mad.lo.u32 {b_addr}, {tn}, {8 * K * 2}, {b_lane}")        # n0 = 8 tn
        em.ins(f"add.u32 {b_addr}, {b_addr}, {em.smem_base}")
        em.ins(f"mad.lo.u32 {c_addr}, {tm}, {16 * Nn * 4}, {c_lane}")
        em.ins(f"mad.lo.u32 {c_addr}, {tn}, {8 * 4}, {c_addr}")
        em.ins(f"add.u32 {c_addr}, {c_addr}, {em.smem_base}")
        acc = [em.new("f") for _ in range(4)]
        if op.acc is not None:
            em.ins(f"ld.shared.v2.f32 {{{acc[0]}, {acc[1]}}}, [{c_addr}+{off_c}]")
            em.ins(f"ld.shared.v2.f32 {{{acc[2]}, {acc[3]}}}, [{c_addr}+{off_c + 8 * Nn * 4}]")
        else:
            for r in acc:
                em.ins(f"mov.f32 {r}, {N.ZERO}")
        frag = "{" + ", ".join(acc) + "}"
        for k0 in range(0, K, 16):
            ra = [em.new("r") for _ in range(4)]
            rb = [em.new("r") for _ in range(2)]
            em.ins(f"ldmatrix.sync.aligned.m8n8.x4.shared.b16 {{{', '.join(ra)}}}, [{a_addr}+{k0 * 2}]")
            em.ins(f"ldmatrix.sync.aligned.m8n8.x2.shared.b16 {{{', '.join(rb)}}}, [{b_addr}+{off_b + k0 * 2}]")
            em.ins(f"mma.sync.aligned.m16n8k16.row.col.f32.{ty}.{ty}.f32 {frag}, {{{', '.join(ra)}}}, "
                   f"{{{', '.join(rb)}}}, {frag}")
        em.ins(f"st.shared.v2.f32 [{c_addr}+{off_c}], {{{acc[0]}, {acc[1]}}}")
        em.ins(f"st.shared.v2.f32 [{c_addr}+{off_c + 8 * Nn * 4}], {{{acc[2]}, {acc[3]}}}")
        em.place(skip)
    em.bar()

    base = em.as_reg(thread_base(em, c_layout, 4, off_c))
    em.set(op.result, Val(dt.float32, c_layout, load_f32_tile(em, c_layout, base)))


def _store_a(em: KernelEmitter, a: Val, ty: str) -> None:
    """A row-major as 16-bit values at smem + 0."""
    layout = a.layout
    base = em.as_reg(thread_base(em, layout, 2, 0))
    for s in range(layout.num_slots):
        if layout.slot_never_valid(s):
            continue
        pred = em.slot_pred(layout, s)
        h = em.new("h")
        em.ins(f"cvt.rn.{ty}.f32 {h}, {a.regs[s]}")
        em.ins(f"{'@' + pred + ' ' if pred else ''}st.shared.b16 [{base}+{layout.slot_const(s) * 2}], {h}")


def _store_bt(em: KernelEmitter, b: Val, ty: str, K: int, off_b: int) -> None:
    """B transposed (N x K row-major) as 16-bit values at smem + off_b."""
    layout = b.layout
    for s in range(layout.num_slots):
        if layout.slot_never_valid(s):
            continue
        pred = em.slot_pred(layout, s)
        k, n = em.coords(layout, s)
        idx = em.add_u32(em.mul_u32(n, K), k)
        addr = em.new("r")
        em.ins(f"mad.lo.u32 {addr}, {em.as_reg(idx)}, 2, {em.smem_base}")
        h = em.new("h")
        em.ins(f"cvt.rn.{ty}.f32 {h}, {b.regs[s]}")
        em.ins(f"{'@' + pred + ' ' if pred else ''}st.shared.b16 [{addr}+{off_b}], {h}")
