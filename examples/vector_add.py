"""Vector add: the smallest tile kernel, one 1-D tile per program, ragged tail masked.

    python examples/vector_add.py
"""

import numpy as np

import tilec as ct

TILE = 1024


@ct.kernel
def vector_add(X: ct.Tensor, Y: ct.Tensor, Z: ct.Tensor):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * TILE], size=[TILE])
    y = ct.load_tile(Y, offset=[i * TILE], size=[TILE])
    ct.store_tile(Z, offset=[i * TILE], tile=x + y)


def add(x, y, out):
    vector_add[(ct.cdiv(x.shape[0], TILE),)](x, y, out)
    return out


def reference(x, y):
    return x.astype(np.float64) + y.astype(np.float64)


def main(n: int = 1_000_003, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n, dtype=np.float32)
    y = rng.standard_normal(n, dtype=np.float32)
    z = add(x, y, np.full_like(x, np.nan))
    err = float(np.max(np.abs(z - reference(x, y))))
    print(f"vector_add n={n}: max |error| vs numpy float64 = {err:.3g}")
    assert err < 1e-6
    return err


if __name__ == "__main__":
    main()
