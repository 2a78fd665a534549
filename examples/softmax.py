"""Row softmax: each program normalises BM whole rows (BN >= row length, a power of two);
padded columns read as -inf so they contribute exp(-inf) = 0.

    python examples/softmax.py
"""

import numpy as np

import tilec as ct


@ct.kernel
def softmax_kernel(X: ct.Tensor, Y: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * BM, 0], size=[BM, BN], padding=float("-inf")).astype(ct.float32)
    m = ct.max(x, axis=1, keepdims=True)
    e = ct.exp(x - m)
    s = ct.sum(e, axis=-1, keepdims=True)
    ct.store_tile(Y, offset=[i * BM, 0], tile=e / s)


def next_power_of_2(n: int) -> int:
    return 1 << (n - 1).bit_length()


def softmax(x, out, BM=4):
    m, n = x.shape
    softmax_kernel[(ct.cdiv(m, BM),)](x, out, BM, next_power_of_2(n))
    return out


def reference(x):
    x = x.astype(np.float64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def main(m: int = 123, n: int = 781, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((m, n)) * 3).astype(np.float16)
    y = softmax(x, np.full((m, n), np.nan, np.float16))
    err = float(np.max(np.abs(y.astype(np.float64) - reference(x))))
    print(f"softmax {m}x{n} f16: max |error| vs numpy float64 = {err:.3g}")
    assert err < 1e-3
    return err


if __name__ == "__main__":
    main()
