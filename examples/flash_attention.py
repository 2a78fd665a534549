"""Flash-attention forward: O = softmax(Q K^T * scale [+ causal mask]) V, computed with an
online softmax over key tiles so the S x S score matrix never exists.  Q, K, V, O are
[batch, heads, seq, head_dim]; the grid is (seq tiles, heads, batch).

    python examples/flash_attention.py
"""

import math

import numpy as np

import tilec as ct


@ct.kernel
def flash_attention_fwd(Q: ct.Tensor, K: ct.Tensor, V: ct.Tensor, O: ct.Tensor, scale: float,
                        BM: ct.Constant[int], BN: ct.Constant[int], D: ct.Constant[int],
                        CAUSAL: ct.Constant[bool]):
    m_blk = ct.tile_idx(0)
    h = ct.tile_idx(1)
    b = ct.tile_idx(2)
    seq = Q.shape[2]
    q = ct.load_tile(Q, offset=[b, h, m_blk * BM, 0], size=[1, 1, BM, D]).reshape([BM, D])
    rows = m_blk * BM + ct.arange(BM)[:, None]
    m_i = ct.full([BM, 1], float("-inf"), ct.float32)
    l_i = ct.zeros([BM, 1], ct.float32)
    acc = ct.zeros([BM, D], ct.float32)
    hi = seq
    if CAUSAL:
        hi = min((m_blk + 1) * BM, seq)
    for start in range(0, hi, BN):
        k = ct.load_tile(K, offset=[b, h, start, 0], size=[1, 1, BN, D]).reshape([BN, D])
        s = ct.matmul(q, k.T) * scale
        cols = start + ct.arange(BN)[None, :]
        valid = cols < seq
        if CAUSAL:
            valid = valid & (cols <= rows)
        s = ct.where(valid, s, float("-inf"))
        m_new = ct.maximum(m_i, ct.max(s, axis=1, keepdims=True))
        p = ct.exp(s - m_new)
        alpha = ct.exp(m_i - m_new)
        l_i = l_i * alpha + ct.sum(p, axis=1, keepdims=True)
        v = ct.load_tile(V, offset=[b, h, start, 0], size=[1, 1, BN, D]).reshape([BN, D])
        acc = acc * alpha + ct.matmul(p.astype(v.dtype), v)
        m_i = m_new
    out = (acc / l_i).reshape([1, 1, BM, D])
    ct.store_tile(O, offset=[b, h, m_blk * BM, 0], tile=out)


def attention(q, k, v, out, causal=False, BM=None, BN=None):
    """O = attention(q, k, v) into `out`.  BM / BN (query / key tile rows) default to 128 for
    head dims the sm_90a wgmma path takes (multiples of 64 up to 128: both matmuls on
    wgmma, two warpgroups), else 64."""
    batch, heads, seq, d = q.shape
    fast = d % 64 == 0 and d <= 128
    BM = BM or (128 if fast else 64)
    BN = BN or (128 if fast else 64)
    flash_attention_fwd[(ct.cdiv(seq, BM), heads, batch)](q, k, v, out, 1.0 / math.sqrt(d), BM, BN, d, causal)
    return out


def reference(q, k, v, causal=False):
    q, k, v = (t.astype(np.float64) for t in (q, k, v))
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if causal:
        n = s.shape[-1]
        s = np.where(np.tril(np.ones((n, n), bool)), s, -np.inf)
    p = np.exp(s - s.max(axis=-1, keepdims=True))
    return (p / p.sum(axis=-1, keepdims=True)) @ v


def main(batch: int = 2, heads: int = 3, seq: int = 150, d: int = 32, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((batch, heads, seq, d)).astype(np.float16) for _ in range(3))
    worst = 0.0
    for causal in (False, True):
        o = attention(q, k, v, np.full(q.shape, np.nan, np.float16), causal)
        err = float(np.max(np.abs(o.astype(np.float64) - reference(q, k, v, causal))))
        print(f"flash_attention {batch}x{heads}x{seq}x{d} f16 causal={causal}: max |error| = {err:.3g}")
        assert err < 2e-2
        worst = max(worst, err)
    return worst


if __name__ == "__main__":
    main()
