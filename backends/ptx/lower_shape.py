"""Shape ops: `tile.splat`, `tile.reshape`, `tile.broadcast`, `tile.permute`, `tile.arange`.

* splat: every slot names the scalar's register (no instruction).
* reshape: free (the blocked layout depends only on the element count).
* broadcast / permute: a shared-memory gather (`exchange.gather`); the destination
  element at coords c reads the source at c with stretched dims set to 0 / at the
  permuted coords.  A splat source stays a splat with no data movement.
* arange: element index + start.
* extract: the one element (held by thread 0) goes through shared memory to every
  thread, since a scalar is the same register value in all threads.
"""

from __future__ import annotations

from tilec import dtypes as dt
from tilec.dialects import tile as T

from .emitter import KernelEmitter, Val, lowers
from .exchange import gather, linear_index, load_element, store_tile
from .lower_grid import constant_reg


@lowers(T.SplatOp)
def lower_splat(em: KernelEmitter, op: T.SplatOp) -> None:
    x = em.get(op.scalar)
    layout = em.layout_of(op.result.type)
    em.set(op.result, Val(x.dtype, layout, [x.regs[0]] * layout.num_slots, True))


@lowers(T.ReshapeOp)
def lower_reshape(em: KernelEmitter, op: T.ReshapeOp) -> None:
    x = em.get(op.source)
    layout = em.layout_of(op.result.type)
    assert layout.num_slots == x.layout.num_slots and layout.vec == x.layout.vec
    em.set(op.result, Val(x.dtype, layout, list(x.regs), x.uniform))


@lowers(T.BroadcastOp)
def lower_broadcast(em: KernelEmitter, op: T.BroadcastOp) -> None:
    x = em.get(op.source)
    src_shape = x.layout.shape
    layout = em.layout_of(op.result.type)

    def index_of(coords):
        return linear_index(em, src_shape, [0 if n == 1 else c for c, n in zip(coords, src_shape)])
    em.set(op.result, gather(em, x, layout, index_of))


@lowers(T.PermuteOp)
def lower_permute(em: KernelEmitter, op: T.PermuteOp) -> None:
    x = em.get(op.source)
    perm = T._get_ints(op.perm)
    src_shape = x.layout.shape
    layout = em.layout_of(op.result.type)

    def index_of(coords):
        src = [0] * len(perm)
        for i, p in enumerate(perm):
            src[p] = coords[i]
        return linear_index(em, src_shape, src)
    em.set(op.result, gather(em, x, layout, index_of))


@lowers(T.ArangeOp)
def lower_arange(em: KernelEmitter, op: T.ArangeOp) -> None:
    start = op.start.value.data
    layout = em.layout_of(op.result.type)
    regs = []
    for s in range(layout.num_slots):
        v = em.add_u32(em.element_index(layout, s), start & 0xFFFFFFFF)
        regs.append(constant_reg(em, dt.int32, v) if isinstance(v, int) else v)
    em.set(op.result, Val(dt.int32, layout, regs))


@lowers(T.ExtractOp)
def lower_extract(em: KernelEmitter, op: T.ExtractOp) -> None:
    x = em.get(op.source)
    if x.uniform:
        em.set(op.result, Val(x.dtype, None, [x.regs[0]]))
        return
    from .exchange import elem_size

    em.reserve_smem(elem_size(x.dtype))
    em.bar()
    store_tile(em, x, 0)
    em.bar()
    em.set(op.result, Val(x.dtype, None, [load_element(em, x.dtype, 0, 0)]))
