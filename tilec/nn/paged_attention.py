"""Decode attention over a paged FP4 KV cache (`tilec.nn.kv_cache`), as in continuous batching.

    out = paged_attention_decode(q, cache, page_table, seq_lens, scale=None)

q: [batch, heads_q, D] (fp16, bf16 or f32); `cache`: an `FP4KVCache` with `heads_kv`
dividing `heads_q` (grouped-query attention: q head h reads KV head h // (heads_q / heads_kv));
page_table: int32 [batch, max_pages], sequence b's token at position pos in page
`page_table[b, pos // 64]`; seq_lens: int32 [batch], each >= 1 (entries of the page table
past a sequence's last page are never read).  Returns [batch, heads_q, D] in q's dtype:

    out[b, h] = softmax(scale * q[b, h] . K_b^T) V_b     (scale defaults to 1/sqrt(D))

with K_b, V_b the first seq_lens[b] tokens of the sequence, dequantized from FP4.

Two kernels.  `_paged_decode_gqa` (the default when a KV head serves a power-of-two group
of 2..8 query heads) runs one program per (KV head, sequence): per page it loads the
64 x D packed e2m1 K tile and its 64 x D/block scales, dequantizes in registers
(`tile.dequantize`), takes the [GROUP, 64] scores of its query heads against it (K broadcast
over the heads, a register copy in the blocked layout), masks the tokens past the
sequence's end (the last page's tail may hold anything, NaN included), and updates one
online softmax per head (running max, running sum, f32 accumulator), then the same for V:
each KV page is decoded once for all its query heads.  `_paged_decode` (other groups, or
`variant="per_q_head"`) does the same with one program per (query head, sequence).
Nothing is dequantized to memory: K/V traffic is D/2 + D/block bytes per token and head.

Long sequences are split over programs (flash-decoding): when the page table is wider than
`pages_per_split` pages (default 8), `_paged_decode_gqa_split` runs one program per (KV head,
sequence, 8 pages) and leaves each query head's unnormalised (max, sum, accumulator) in a
float32 workspace, then `_combine_splits` merges them per (query head, sequence).

Measured on the H100 (bench/RESULTS.md): 32 sequences of 256..4096 tokens, 32 query / 8 KV
heads, D = 128, one program per KV head:

| scales | no split | split every 8 pages | vs a torch fp16 paged reference (gather + SDPA) |
|---|---:|---:|---:|
| MX | 476 us | 348 us | 3.5x |
| NV | 447 us | 328 us | 3.75x |

One program per query head takes 693 us (MX) and 634 us (NV).
"""

from __future__ import annotations

import math

import tilec as ct

from .kv_cache import PAGE, FP4KVCache, _is_torch, host_view

__all__ = ["paged_attention_decode"]


@ct.kernel
def _paged_decode(Q: ct.Tensor, KP: ct.Tensor, VP: ct.Tensor, KS: ct.Tensor, VS: ct.Tensor, PT: ct.Tensor,
                  SL: ct.Tensor, O: ct.Tensor, scale: float, D: ct.Constant[int], B: ct.Constant[int],
                  GROUP: ct.Constant[int]):
    h = ct.tile_idx(0)
    b = ct.tile_idx(1)
    kvh = h // GROUP
    seq_len = ct.load_tile(SL, offset=[b], size=[1]).sum()
    q = ct.load_tile(Q, offset=[b, h, 0], size=[1, 1, D]).reshape([1, D]).astype(ct.float32) * scale
    q = ct.broadcast_to(q, [64, D])          # once, outside the page loop
    m_i = ct.full([1, 1], float("-inf"), ct.float32)
    l_i = ct.zeros([1, 1], ct.float32)
    acc = ct.zeros([1, D], ct.float32)
    for p in range(0, (seq_len + 63) // 64):
        page = ct.load_tile(PT, offset=[b, p], size=[1, 1]).sum()
        kq = ct.load_tile(KP, offset=[page, kvh, 0, 0], size=[1, 1, 64, D]).reshape([64, D])
        ks = ct.load_tile(KS, offset=[page, kvh, 0, 0], size=[1, 1, 64, D // B], padding=1.0).reshape([64, D // B])
        k = ct.dequantize(kq, ks, block=B)
        valid = (p * 64 + ct.arange(64)[:, None]) < seq_len
        s = ct.where(valid, ct.sum(k * q, axis=1, keepdims=True), float("-inf"))       # [64, 1]
        m_new = ct.maximum(m_i, ct.max(s, axis=0, keepdims=True))
        pr = ct.exp(s - m_new)
        alpha = ct.exp(m_i - m_new)
        l_i = l_i * alpha + ct.sum(pr, axis=0, keepdims=True)
        vq = ct.load_tile(VP, offset=[page, kvh, 0, 0], size=[1, 1, 64, D]).reshape([64, D])
        vs = ct.load_tile(VS, offset=[page, kvh, 0, 0], size=[1, 1, 64, D // B], padding=1.0).reshape([64, D // B])
        v = ct.where(valid, ct.dequantize(vq, vs, block=B), 0.0)
        acc = acc * alpha + ct.sum(pr * v, axis=0, keepdims=True)
        m_i = m_new
    ct.store_tile(O, offset=[b, h, 0], tile=(acc / l_i).reshape([1, 1, D]))


def _attend_kv_pages(Q, KP, VP, KS, VS, PT, b, kvh, seq_len, first, last, scale, D, B, GROUP):
    """Online softmax of the GROUP query heads of KV head `kvh` over pages [first, last) of
    sequence b: each page's K/V tiles are decoded once for all the heads, as [GROUP, 64, D]
    tiles (k broadcast over the heads, a register copy in the blocked layout), and the tokens
    past the sequence's end are masked.  Returns the unnormalised state (m, l, acc):
    [GROUP, 1, 1] running max and sum, [GROUP, 1, D] accumulator (-inf, 0, 0 for no page)."""
    q = ct.load_tile(Q, offset=[b, kvh * GROUP, 0], size=[1, GROUP, D]).reshape([GROUP, 1, D])
    q = ct.broadcast_to(q.astype(ct.float32) * scale, [GROUP, 64, D])      # once, outside the page loop
    m_i = ct.full([GROUP, 1, 1], float("-inf"), ct.float32)
    l_i = ct.zeros([GROUP, 1, 1], ct.float32)
    acc = ct.zeros([GROUP, 1, D], ct.float32)
    for p in range(first, last):
        page = ct.load_tile(PT, offset=[b, p], size=[1, 1]).sum()
        kq = ct.load_tile(KP, offset=[page, kvh, 0, 0], size=[1, 1, 64, D]).reshape([64, D])
        ks = ct.load_tile(KS, offset=[page, kvh, 0, 0], size=[1, 1, 64, D // B], padding=1.0).reshape([64, D // B])
        k = ct.dequantize(kq, ks, block=B).reshape([1, 64, D])
        valid = (p * 64 + ct.arange(64).reshape([1, 64, 1])) < seq_len
        s = ct.where(valid, ct.sum(k * q, axis=2, keepdims=True), float("-inf"))        # [GROUP, 64, 1]
        m_new = ct.maximum(m_i, ct.max(s, axis=1, keepdims=True))
        pr = ct.exp(s - m_new)
        alpha = ct.exp(m_i - m_new)
        l_i = l_i * alpha + ct.sum(pr, axis=1, keepdims=True)
        vq = ct.load_tile(VP, offset=[page, kvh, 0, 0], size=[1, 1, 64, D]).reshape([64, D])
        vs = ct.load_tile(VS, offset=[page, kvh, 0, 0], size=[1, 1, 64, D // B], padding=1.0).reshape([64, D // B])
        v = ct.where(valid, ct.dequantize(vq, vs, block=B).reshape([1, 64, D]), 0.0)
        acc = acc * alpha + ct.sum(pr * v, axis=1, keepdims=True)
        m_i = m_new
    return m_i, l_i, acc


@ct.kernel
def _paged_decode_gqa(Q: ct.Tensor, KP: ct.Tensor, VP: ct.Tensor, KS: ct.Tensor, VS: ct.Tensor, PT: ct.Tensor,
                      SL: ct.Tensor, O: ct.Tensor, scale: float, D: ct.Constant[int], B: ct.Constant[int],
                      GROUP: ct.Constant[int]):
    """One program per (KV head, sequence) over all its pages (`_attend_kv_pages`)."""
    kvh = ct.tile_idx(0)
    b = ct.tile_idx(1)
    seq_len = ct.load_tile(SL, offset=[b], size=[1]).sum()
    _, l_i, acc = _attend_kv_pages(Q, KP, VP, KS, VS, PT, b, kvh, seq_len, 0, (seq_len + 63) // 64, scale, D, B,
                                   GROUP)
    ct.store_tile(O, offset=[b, kvh * GROUP, 0], tile=(acc / l_i).reshape([1, GROUP, D]))


@ct.kernel
def _paged_decode_gqa_split(Q: ct.Tensor, KP: ct.Tensor, VP: ct.Tensor, KS: ct.Tensor, VS: ct.Tensor,
                            PT: ct.Tensor, SL: ct.Tensor, WA: ct.Tensor, WM: ct.Tensor, WL: ct.Tensor, scale: float,
                            D: ct.Constant[int], B: ct.Constant[int], GROUP: ct.Constant[int],
                            PPS: ct.Constant[int]):
    """`_paged_decode_gqa` over pages [split * PPS, (split + 1) * PPS) of the sequence only
    (split = tile_idx(2)); its unnormalised state goes to the workspace: WA [batch, heads_q,
    splits, D] the accumulator, WM / WL [batch, heads_q, splits] the running max and sum (-inf
    and 0 for a split past the sequence's end).  `_combine_splits` merges them."""
    kvh = ct.tile_idx(0)
    b = ct.tile_idx(1)
    sp = ct.tile_idx(2)
    seq_len = ct.load_tile(SL, offset=[b], size=[1]).sum()
    first = sp * PPS
    m_i, l_i, acc = _attend_kv_pages(Q, KP, VP, KS, VS, PT, b, kvh, seq_len, first,
                                     ct.minimum(first + PPS, (seq_len + 63) // 64), scale, D, B, GROUP)
    ct.store_tile(WA, offset=[b, kvh * GROUP, sp, 0], tile=acc.reshape([1, GROUP, 1, D]))
    ct.store_tile(WM, offset=[b, kvh * GROUP, sp], tile=m_i.reshape([1, GROUP, 1]))
    ct.store_tile(WL, offset=[b, kvh * GROUP, sp], tile=l_i.reshape([1, GROUP, 1]))


@ct.kernel
def _combine_splits(WA: ct.Tensor, WM: ct.Tensor, WL: ct.Tensor, O: ct.Tensor, D: ct.Constant[int],
                    SPLITS: ct.Constant[int]):
    """out[b, h] = sum_s acc_s e^(m_s - m) / sum_s l_s e^(m_s - m), m = max_s m_s, over the
    splits of `_paged_decode_gqa_split` (SPLITS: their count rounded up to a power of two; the
    padding reads as m = -inf, l = 0, acc = 0).  Split 0 always holds the first token, so m is
    finite."""
    h = ct.tile_idx(0)
    b = ct.tile_idx(1)
    m_s = ct.load_tile(WM, offset=[b, h, 0], size=[1, 1, SPLITS], padding=float("-inf")).reshape([SPLITS, 1])
    l_s = ct.load_tile(WL, offset=[b, h, 0], size=[1, 1, SPLITS], padding=0.0).reshape([SPLITS, 1])
    a_s = ct.load_tile(WA, offset=[b, h, 0, 0], size=[1, 1, SPLITS, D], padding=0.0).reshape([SPLITS, D])
    m = ct.max(m_s, axis=0, keepdims=True)
    w = ct.exp(m_s - m)                                   # 0 for an empty split (m_s = -inf)
    l = ct.sum(l_s * w, axis=0, keepdims=True)
    acc = ct.sum(a_s * w, axis=0, keepdims=True)
    ct.store_tile(O, offset=[b, h, 0], tile=(acc / l).reshape([1, 1, D]))


#: pages per program when a sequence is split over programs (flash-decoding): 8 pages = 512 tokens
PAGES_PER_SPLIT = 8


def _shares_kv(group: int, variant: str | None) -> bool:
    """Whether the one-program-per-KV-head kernel serves this grouping: a power-of-two group of
    2..8 query heads per KV head (its [GROUP, 64, D] tiles need power-of-two dims to reduce in
    registers; larger groups would not fit the registers), unless `variant` says otherwise."""
    if variant not in (None, "per_kv_head", "per_q_head"):
        raise ValueError(f"variant must be 'per_kv_head' or 'per_q_head', got {variant!r}")
    fits = 2 <= group <= 8 and group & (group - 1) == 0
    return fits and variant != "per_q_head"


def _check_pages(page_table, seq_lens, cache: FP4KVCache) -> None:
    """Host page tables and lengths (numpy, CPU torch) must stay inside the cache: each length
    >= 1 and within the table's pages, each page a sequence reads in [0, num_pages) (the
    kernels' bounds checks would otherwise read zeros or page 0 silently).  CUDA tensors are
    not read back: that would synchronise every decode step."""
    from .kv_cache import _is_cuda

    if _is_cuda(page_table) or _is_cuda(seq_lens):
        return
    import numpy as np

    lens = np.asarray(host_view(seq_lens)).astype(np.int64)
    table = np.asarray(host_view(page_table))
    if not lens.size:
        return
    if lens.min() < 1:
        raise ValueError(f"seq_lens must be >= 1, got {int(lens.min())}")
    need = (lens + PAGE - 1) // PAGE
    if need.max() > table.shape[1]:
        raise ValueError(f"seq_lens {int(lens.max())} needs {int(need.max())} pages, the page_table has "
                         f"{table.shape[1]} per sequence")
    used = table[np.arange(table.shape[1])[None, :] < need[:, None]]
    if used.min() < 0 or used.max() >= cache.num_pages:
        bad = int(used.min()) if used.min() < 0 else int(used.max())
        raise ValueError(f"page_table holds page {bad} for a sequence's tokens, outside the cache's "
                         f"{cache.num_pages} pages")


def paged_attention_decode(q, cache: FP4KVCache, page_table, seq_lens, scale: float | None = None, out=None,
                           num_warps: int | None = None, variant: str | None = None,
                           pages_per_split: int | None = None):
    """Attention of one new query token per sequence over its FP4 KV pages (module docstring);
    `out`: an optional preallocated result; `num_warps`: the kernel's warps (default 4,
    the fastest measured on the H100, bench/RESULTS.md; 8 for a group of 8 query heads per
    KV head, whose [8, 64, D] tiles would spill registers at 4); `variant`: "per_kv_head" (the
    default where it applies, `_shares_kv`) or "per_q_head" (one program per query head);
    `pages_per_split`: with the per-KV-head kernel, a page table wider than this many pages
    splits every sequence into programs of that many pages, merged by a second kernel
    (flash-decoding; default `PAGES_PER_SPLIT`, 0 never splits), so the longest sequence no
    longer sets the time alone.
    Host page tables and lengths (numpy, CPU torch) are checked against the cache (pages in
    range, lengths within the table, no empty sequence); CUDA ones are not read back (that
    would synchronise every decode step): out-of-range CUDA entries read wrong pages."""
    opts = {} if num_warps is None else {"num_warps": num_warps}
    if len(q.shape) != 3:
        raise ValueError(f"q must be [batch, heads, head_dim], got {list(q.shape)}")
    batch, hq, d = (int(n) for n in q.shape)
    if d != cache.head_dim:
        raise ValueError(f"q's head_dim {d} differs from the cache's {cache.head_dim}")
    if hq % cache.heads:
        raise ValueError(f"q's {hq} heads are not a multiple of the cache's {cache.heads} KV heads")
    if tuple(int(n) for n in seq_lens.shape) != (batch,) or len(page_table.shape) != 2 \
            or int(page_table.shape[0]) != batch:
        raise ValueError(f"page_table must be [{batch}, max_pages] and seq_lens [{batch}], got "
                         f"{list(page_table.shape)} and {list(seq_lens.shape)}")
    if scale is None:
        scale = 1.0 / math.sqrt(d)
    if out is not None and tuple(int(n) for n in out.shape) != (batch, hq, d):
        raise ValueError(f"out must be [{batch}, {hq}, {d}] like q, got {list(out.shape)}")
    if out is None:
        if _is_torch(q):
            import torch

            out = torch.empty_like(q)
        else:
            import numpy as np

            out = np.empty_like(q)
    if batch:
        _check_pages(page_table, seq_lens, cache)
        kp, vp, ks, vs = cache.kernel_args()
        args = (host_view(q), kp, vp, ks, vs, host_view(page_table), host_view(seq_lens), host_view(out),
                float(scale), d, cache.block)
        group = hq // cache.heads
        pps = PAGES_PER_SPLIT if pages_per_split is None else int(pages_per_split)
        if pps < 0:
            raise ValueError(f"pages_per_split must be >= 0, got {pages_per_split}")
        max_pages = int(page_table.shape[1])
        if _shares_kv(group, variant):
            if group == 8 and num_warps is None:
                opts = {"num_warps": 8}      # [8, 64, D] tiles: 4 warps would spill registers
            if pps and max_pages > pps:
                _split_decode(args, out, q, cache, batch, hq, d, group, pps, -(-max_pages // pps), opts)
            else:
                _paged_decode_gqa[(cache.heads, batch)](*args, group, **opts)
        else:
            _paged_decode[(hq, batch)](*args, group, **opts)
    return out


def _split_decode(args, out, q, cache: FP4KVCache, batch: int, hq: int, d: int, group: int, pps: int,
                  splits: int, opts: dict) -> None:
    """The flash-decoding path: `_paged_decode_gqa_split` on a (heads_kv, batch, splits) grid
    into a float32 workspace, then `_combine_splits` per (query head, sequence)."""
    shape = (batch, hq, splits)
    if _is_torch(q):
        import torch

        wa = torch.empty(shape + (d,), dtype=torch.float32, device=q.device)
        wm = torch.empty(shape, dtype=torch.float32, device=q.device)
        wl = torch.empty(shape, dtype=torch.float32, device=q.device)
    else:
        import numpy as np

        wa, wm, wl = np.empty(shape + (d,), np.float32), np.empty(shape, np.float32), np.empty(shape, np.float32)
    views = [host_view(t) for t in (wa, wm, wl)]
    q_, kp, vp, ks, vs, pt, sl, _, scale, d_, block = args
    _paged_decode_gqa_split[(cache.heads, batch, splits)](q_, kp, vp, ks, vs, pt, sl, *views, scale, d_, block,
                                                         group, pps, **opts)
    _combine_splits[(hq, batch)](*views, host_view(out), d, 1 << (splits - 1).bit_length())


assert PAGE == 64   # the kernel's page loop hard-codes 64 tokens per page
