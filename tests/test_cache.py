"""The on-disk compile cache (tilec/cache.py): hits across processes, misses on any
change the IR depends on, static dims remembered, disabling, corrupt entries.

The key includes a hash of tilec's own sources, so editing tilec/, dialects/ or passes/
while these tests run makes a "second process" miss: run them on a quiet tree."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tilec import cache

KERNEL_MODULE = '''
import json, sys
import numpy as np
import tilec as ct
from tilec import cache

SCALE = {scale}


def helper(x):
    return x * {factor}


@ct.kernel
def scaled_add(X: ct.Tensor, Y: ct.Tensor, Z: ct.Tensor):
    i = ct.tile_idx(0)
    n = X.shape[0]                       # used as a tile size: the dim gets specialised
    x = ct.load_tile(X, offset=[0], size=[n])
    y = ct.load_tile(Y, offset=[0], size=[n])
    ct.store_tile(Z, offset=[0], tile=helper(x) + y * SCALE)


if __name__ == "__main__":
    dtype = np.dtype(sys.argv[1]) if len(sys.argv) > 1 else np.float32
    x = np.arange(16, dtype=dtype)
    y = np.ones(16, dtype)
    z = np.zeros(16, dtype)
    scaled_add[(1,)](x, y, z)
    ok = bool(np.allclose(z, x * {factor} + {scale}))
    print(json.dumps({{"stats": cache.stats, "ok": ok, "static_dims": sorted(scaled_add.static_dims)}}))
'''


def _write(path, scale=2.0, factor=3.0):
    path.write_text(KERNEL_MODULE.format(scale=scale, factor=factor))


def _run(script, cache_dir, *args, **env_extra):
    env = dict(os.environ)
    env.pop("TILEC_DISABLE_CACHE", None)
    env["TILEC_CACHE_DIR"] = str(cache_dir)
    env.update(env_extra)
    env.setdefault("TILEC_DEBUG_CACHE", "1")  # the log shows in pytest's report on a failure
    out = subprocess.run([sys.executable, str(script), *args], env=env, capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ok"], out
    print(result["stats"], out.stderr)
    return result["stats"], result, out.stderr


@pytest.fixture
def kernel_script(tmp_path):
    script = tmp_path / "kern.py"
    _write(script)
    return script


def test_second_process_hits(kernel_script, tmp_path):
    d = tmp_path / "cache"
    first, r1, _ = _run(kernel_script, d)
    assert first["hits"] == 0 and first["misses"] >= 1 and first["stores"] == 1
    assert r1["static_dims"] == [[0, 0]]
    second, r2, log = _run(kernel_script, d, TILEC_DEBUG_CACHE="1")
    # static dims are known from the start, so the very first lookup hits: no trace at all
    assert second == {**second, "hits": 1, "misses": 0, "compiles": 0, "static_dims_loaded": 1}
    assert r2["static_dims"] == [[0, 0]]
    assert "tilec cache: hit scaled_add" in log
    assert not list(d.rglob("*.tmp"))  # atomic writes leave no temporaries


def test_helper_source_change_misses(kernel_script, tmp_path):
    d = tmp_path / "cache"
    _run(kernel_script, d)
    _write(kernel_script, factor=4.0)
    stats, _, _ = _run(kernel_script, d)
    assert stats["hits"] == 0 and stats["compiles"] >= 1


def test_global_constant_change_misses(kernel_script, tmp_path):
    d = tmp_path / "cache"
    _run(kernel_script, d)
    _write(kernel_script, scale=5.0)
    stats, _, _ = _run(kernel_script, d)
    assert stats["hits"] == 0 and stats["compiles"] >= 1
    stats, _, _ = _run(kernel_script, d)   # and the new entry is then reused
    assert stats["hits"] == 1 and stats["compiles"] == 0


def test_different_specs_miss(kernel_script, tmp_path):
    d = tmp_path / "cache"
    _run(kernel_script, d, "float32")
    stats, _, _ = _run(kernel_script, d, "float64")
    assert stats["hits"] == 0 and stats["compiles"] >= 1


@pytest.mark.parametrize("env", [{"TILEC_DISABLE_CACHE": "1"}, {"TILEC_CACHE_DIR": ""}])
def test_disabled(kernel_script, tmp_path, env):
    d = tmp_path / "cache"
    for _ in range(2):
        out = subprocess.run([sys.executable, str(kernel_script)], capture_output=True, text=True, check=True,
                             env={**os.environ, "TILEC_CACHE_DIR": str(d), **env})
        stats = json.loads(out.stdout.strip().splitlines()[-1])["stats"]
        assert stats["hits"] == 0 and stats["stores"] == 0 and stats["compiles"] >= 1
    assert not d.exists()


def test_corrupt_entries_ignored_and_overwritten(kernel_script, tmp_path):
    d = tmp_path / "cache"
    _run(kernel_script, d)
    entries = list((d / "kernels").glob("*.json"))
    assert len(entries) == 1
    for garbage in ("{not json", json.dumps({"format": cache.FORMAT, "key": entries[0].stem, "name": "k",
                                             "target": "cpu", "grid_rank": 1, "ir": "builtin.module { bad"})):
        entries[0].write_text(garbage)
        stats, _, _ = _run(kernel_script, d)
        assert stats["corrupt"] == 1 and stats["hits"] == 0 and stats["stores"] == 1
        stats, _, _ = _run(kernel_script, d)
        assert stats["hits"] == 1 and stats["corrupt"] == 0


# ---------------------------------------------------------------- in-process


def _load(path, name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_in_process_hit_with_fresh_kernel(kernel_script, tmp_path, monkeypatch):
    """A new Kernel object (empty in-memory cache) finds the entry on disk and runs it."""
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("TILEC_DISABLE_CACHE", raising=False)
    mod = _load(kernel_script, "tilec_cache_test_mod")
    x, y = np.arange(16, dtype=np.float32), np.ones(16, np.float32)
    z = np.zeros(16, np.float32)
    mod.scaled_add[(1,)](x, y, z)
    before = dict(cache.stats)
    fresh = type(mod.scaled_add)(mod.scaled_add.fn)
    z2 = np.zeros(16, np.float32)
    fresh[(1,)](x, y, z2)
    assert cache.stats["hits"] == before["hits"] + 1
    assert cache.stats["compiles"] == before["compiles"]
    np.testing.assert_array_equal(z, z2)


def test_key_is_stable_and_sensitive(kernel_script, tmp_path):
    from tilec.driver import CompileOptions

    mod = _load(kernel_script, "tilec_cache_test_mod2")
    k = mod.scaled_add
    x = np.zeros(16, np.float32)
    specs, _ = k.bind((x, x, x))
    key = cache.artifact_key(k, specs, "cpu", CompileOptions())
    assert key == cache.artifact_key(k, specs, "cpu", CompileOptions())
    assert key != cache.artifact_key(k, specs, "cpu", CompileOptions(debuginfo=True))
    mod.SCALE = 7.0  # a global constant is read at key time, not frozen at first use
    assert key != cache.artifact_key(k, specs, "cpu", CompileOptions())


def test_describe_refuses_unstable_values():
    with pytest.raises(cache.Unstable):
        cache.describe(object())
    assert cache.describe((1, 2.0, "a")) == cache.describe((1, 2.0, "a"))
    assert cache.describe(1) != cache.describe(1.0) != cache.describe(True)
    big = np.zeros(10_000)
    other = big.copy()
    other[5000] = 1  # repr() of both is the same elided text
    assert cache.describe(big) != cache.describe(other)


def test_dependency_hash_follows_helpers(tmp_path):
    src = textwrap.dedent('''
        C = 1
        class Cfg:
            BLOCK = 64
        def leaf(x):
            return x + C + Cfg.BLOCK
        def mid(x):
            return leaf(x)
        def top(x):
            return mid(x)
    ''')
    (tmp_path / "deps.py").write_text(src)
    mod = _load(tmp_path / "deps.py", "tilec_cache_test_deps")
    h = cache.dependency_hash(mod.top)
    mod.C = 2
    h2 = cache.dependency_hash(mod.top)
    assert h2 != h
    mod.Cfg.BLOCK = 128  # class attributes read through `Cfg.BLOCK` count too
    assert cache.dependency_hash(mod.top) != h2
