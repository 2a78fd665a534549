"""The launch fast path: a repeated launch signature reuses a plan; anything that changes
the specialisation (dtype, rank, static dims, scalar width, constants) takes the full path."""

import numpy as np

import tilec as ct


@ct.kernel
def axpy(X: ct.Tensor, Y: ct.Tensor, a: float, B: ct.Constant[int]):
    i = ct.tile_idx(0)
    ct.store_tile(Y, [i * B], ct.load_tile(X, [i * B], [B]) * a + ct.load_tile(Y, [i * B], [B]))


def test_plans_are_reused_and_stay_correct():
    axpy._plans.clear()
    for n, a in ((100, 2.0), (300, -1.0), (64, 0.5)):     # dynamic size: one plan serves all
        x = np.arange(n, dtype=np.float32)
        y = np.ones(n, np.float32)
        axpy[(ct.cdiv(n, 32),)](x, y, a, 32)
        np.testing.assert_allclose(y, 1.0 + a * x.astype(np.float64))
    grids = {k[0] for k in axpy._plans}
    assert len(axpy._plans) == len(grids) == 3           # one plan per grid, same signature


def test_signature_separates_specialisations():
    x32 = np.zeros(8, np.float32)
    s = axpy.launch_signature
    assert s((x32, x32, 1.0, 32)) == s((x32.copy(), x32.copy(), 3.0, 32))
    assert s((x32, x32, 1.0, 32)) != s((x32, x32, 1.0, 64))                     # constant
    assert s((x32, x32, 1.0, 32)) != s((x32.astype(np.float16), x32, 1.0, 32))  # dtype
    assert s((x32, x32, 1.0, 32)) != s((x32.reshape(2, 4), x32, 1.0, 32))       # rank
    assert s((x32, x32, 1, 32)) != s((x32, x32, 2**40, 32))                     # i32 vs i64 scalar
    assert s((x32, x32, 1.0, [32])) is None                                     # unhashable constant
    assert s((x32[::2], x32, 1.0, 32)) != s((x32[:4], x32, 1.0, 32))            # contiguity


def test_static_dims_enter_the_signature():
    @ct.kernel
    def rowsum(X: ct.Tensor, Y: ct.Tensor):
        n = X.shape[1]                       # used as a tile size: specialised
        ct.store_tile(Y, [0], ct.sum(ct.load_tile(X, [0, 0], [4, n]), axis=1))

    for n in (8, 16, 8):
        x = np.ones((4, n), np.float32)
        y = np.zeros(4, np.float32)
        rowsum[(1,)](x, y)
        np.testing.assert_array_equal(y, np.full(4, n))
    assert rowsum.static_dims == {(0, 1)}
    assert len(rowsum._plans) == 2


def test_sim_target_runs_host_launches_through_the_ptx_simulator(monkeypatch, example):
    """TILEC_TARGET=sim:sm_100a: numpy launches compile for sm_100a and run in backends/sim."""
    mod = example("matmul")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((70, 48)).astype(np.float16)
    b = rng.standard_normal((48, 40)).astype(np.float16)
    calls = []
    import tilec.backends.sim.launch as sim_launch
    real = sim_launch.run_ptx_kernel
    monkeypatch.setattr(sim_launch, "run_ptx_kernel", lambda k, v, g: (calls.append(k.target), real(k, v, g)))
    for target in ("sim:sm_100a", "sim:sm_80"):
        monkeypatch.setenv("TILEC_TARGET", target)
        c = mod.matmul(a, b, np.full((70, 40), np.nan, np.float32), BM=64, BN=32, BK=16)
        np.testing.assert_allclose(c, mod.reference(a, b), rtol=1e-3, atol=1e-3)
    assert calls == ["sm_100a", "sm_80"]
    monkeypatch.setenv("TILEC_TARGET", "sm_42")
    import pytest
    with pytest.raises(ct.LaunchError, match="TILEC_TARGET"):
        mod.matmul(a, b, np.zeros((70, 40), np.float32))
