"""@ct.autotune: every config is timed once per key, the winner is reused (memory and
disk), grids may depend on the config, and outputs named in restore_value survive."""

import numpy as np
import pytest

import tilec as ct


def make_kernel():
    @ct.kernel
    def scaled_copy(X: ct.Tensor, Y: ct.Tensor, scale: float, B: ct.Constant[int]):
        i = ct.tile_idx(0)
        ct.store_tile(Y, [i * B], ct.load_tile(X, [i * B], [B]) * scale, mode="atomic_add")

    return scaled_copy


CONFIGS = [ct.Config({"B": 16}), ct.Config({"B": 64}, num_warps=2), ct.Config({"B": 256})]


def test_autotune_picks_a_config_and_reuses_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path))
    tuned = ct.autotune(configs=CONFIGS, key=["X"], restore_value=["Y"])(make_kernel())
    x = np.arange(1000, dtype=np.float32)
    y = np.zeros_like(x)
    grid = lambda cfg: (ct.cdiv(x.size, cfg["B"]),)  # noqa: E731
    tuned[grid](x, y, 2.0)
    # restore_value kept tuning runs from accumulating: exactly one launch's worth was added
    np.testing.assert_array_equal(y, 2.0 * x)
    (key,) = tuned.best
    assert key == (("float32", (1000,)),)
    assert len(tuned.timings[key]) == len(CONFIGS) and tuned.best[key] in CONFIGS
    # the same key does not tune again
    tuned.timings.clear()
    tuned[grid](x, y, 1.0)
    np.testing.assert_array_equal(y, 3.0 * x)
    assert not tuned.timings
    # a new key tunes again
    x2 = np.ones(300, np.float32)
    y2 = np.zeros_like(x2)
    tuned[lambda cfg: (ct.cdiv(300, cfg["B"]),)](x2, y2, 1.0)
    np.testing.assert_array_equal(y2, x2)
    assert len(tuned.best) == 2


def test_winner_is_remembered_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path))
    kernel = make_kernel()
    first = ct.autotune(configs=CONFIGS, key=["X"], restore_value=["Y"])(kernel)
    x = np.ones(500, np.float32)
    y = np.zeros_like(x)
    grid = lambda cfg: (ct.cdiv(500, cfg["B"]),)  # noqa: E731
    first[grid](x, y, 1.0)
    assert list((tmp_path / "autotune").iterdir())
    second = ct.autotune(configs=CONFIGS, key=["X"], restore_value=["Y"])(kernel)
    second[grid](x, y, 1.0)
    assert not second.timings                      # served from disk, no timing runs
    assert second.best == first.best
    np.testing.assert_array_equal(y, 2.0 * x)


def test_failing_configs_lose_and_bad_declarations_raise(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path))
    configs = [ct.Config({"B": 0}), ct.Config({"B": 32})]   # B=0 is not a valid tile size
    tuned = ct.autotune(configs=configs, key=["X"], restore_value=["Y"])(make_kernel())
    x = np.ones(64, np.float32)
    y = np.zeros_like(x)
    tuned[lambda cfg: (max(1, 64 // max(cfg["B"], 1)),)](x, y, 1.0)
    assert list(tuned.best.values()) == [configs[1]]
    np.testing.assert_array_equal(y, x)
    with pytest.raises(ValueError, match="not parameters"):
        ct.autotune(configs=configs, key=["Q"])(make_kernel())
    with pytest.raises(TypeError, match="@ct.kernel"):
        ct.autotune(configs=configs, key=["X"])(lambda X: None)
