"""LayerNorm over the last axis with weight and bias: y = (x - mean) / sqrt(var + eps) * w + b.
Row length is dynamic; padded columns are masked out of the variance.

    python examples/layernorm.py
"""

import numpy as np

import tilec as ct


@ct.kernel
def layernorm_kernel(X: ct.Tensor, W: ct.Tensor, B: ct.Tensor, Y: ct.Tensor, eps: float,
                     BM: ct.Constant[int], BN: ct.Constant[int]):
    i = ct.tile_idx(0)
    n = X.shape[1]
    x = ct.load_tile(X, offset=[i * BM, 0], size=[BM, BN]).astype(ct.float32)
    mean = ct.sum(x, axis=1, keepdims=True) / n
    cols = ct.arange(BN)[None, :]
    xc = ct.where(cols < n, x - mean, 0.0)
    var = ct.sum(xc * xc, axis=1, keepdims=True) / n
    rstd = ct.rsqrt(var + eps)
    w = ct.load_tile(W, offset=[0], size=[BN]).astype(ct.float32)
    b = ct.load_tile(B, offset=[0], size=[BN]).astype(ct.float32)
    ct.store_tile(Y, offset=[i * BM, 0], tile=xc * rstd * w[None, :] + b[None, :])


def layernorm(x, w, b, out, eps=1e-5, BM=8):
    m, n = x.shape
    layernorm_kernel[(ct.cdiv(m, BM),)](x, w, b, out, eps, BM, 1 << (n - 1).bit_length())
    return out


def reference(x, w, b, eps=1e-5):
    x = x.astype(np.float64)
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w.astype(np.float64) + b.astype(np.float64)


def main(m: int = 77, n: int = 300, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((m, n)) * 2 + 1).astype(np.float32)
    w = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    y = layernorm(x, w, b, np.full((m, n), np.nan, np.float32))
    err = float(np.max(np.abs(y - reference(x, w, b))))
    print(f"layernorm {m}x{n} f32: max |error| vs numpy float64 = {err:.3g}")
    assert err < 1e-4
    return err


if __name__ == "__main__":
    main()
