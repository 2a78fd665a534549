"""A fused elementwise kernel over a 2-D tensor: GELU(tanh) of `x * scale + bias`,
cast to the output dtype, with a row-broadcast bias and ragged edges on both axes.

    python examples/fused_elementwise.py
"""

import math

import numpy as np

import tilec as ct

SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


@ct.kernel
def bias_gelu(X: ct.Tensor, Bias: ct.Tensor, Y: ct.Tensor, scale: float,
              BM: ct.Constant[int], BN: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    x = ct.load_tile(X, offset=[i * BM, j * BN], size=[BM, BN]).astype(ct.float32)
    b = ct.load_tile(Bias, offset=[j * BN], size=[BN]).astype(ct.float32)
    h = x * scale + b[None, :]
    y = 0.5 * h * (1.0 + ct.tanh(SQRT_2_OVER_PI * (h + 0.044715 * h * h * h)))
    ct.store_tile(Y, offset=[i * BM, j * BN], tile=y)


def launch(x, bias, out, scale, BM=32, BN=64):
    m, n = x.shape
    bias_gelu[(ct.cdiv(m, BM), ct.cdiv(n, BN))](x, bias, out, scale, BM, BN)
    return out


def reference(x, bias, scale):
    h = x.astype(np.float64) * scale + bias.astype(np.float64)[None, :]
    return 0.5 * h * (1.0 + np.tanh(SQRT_2_OVER_PI * (h + 0.044715 * h ** 3)))


def main(m: int = 300, n: int = 500, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((m, n)).astype(np.float16)
    bias = rng.standard_normal(n).astype(np.float16)
    y = launch(x, bias, np.full((m, n), np.nan, np.float16), 0.75)
    err = float(np.max(np.abs(y.astype(np.float64) - reference(x, bias, 0.75))))
    print(f"bias_gelu {m}x{n} f16: max |error| vs numpy float64 = {err:.3g}")
    assert err < 1e-2
    return err


if __name__ == "__main__":
    main()
