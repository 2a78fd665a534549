"""Every example, run on the CPU backend at small sizes, against numpy float64."""

import numpy as np
import pytest


def test_vector_add(example):
    mod = example("vector_add")
    assert mod.main(n=5000) < 1e-6


def test_fused_elementwise(example):
    assert example("fused_elementwise").main(m=70, n=130) < 1e-2


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_matmul_ragged(example, dtype):
    mod = example("matmul")
    rng = np.random.default_rng(1)
    a = rng.standard_normal((131, 77)).astype(dtype)
    b = rng.standard_normal((77, 70)).astype(dtype)
    c = mod.matmul(a, b, np.full((131, 70), np.nan, np.float32), BM=32, BN=32, BK=16)
    ref = mod.reference(a, b)
    np.testing.assert_allclose(c, ref, rtol=1e-4, atol=1e-4)


def test_softmax(example):
    assert example("softmax").main(m=37, n=100) < 1e-3


def test_layernorm(example):
    assert example("layernorm").main(m=21, n=90) < 1e-4


def test_flash_attention(example):
    assert example("flash_attention").main(batch=1, heads=2, seq=100, d=16) < 2e-2


def test_matmul_relu_dropout(example):
    mod = example("matmul_relu_dropout")
    assert mod.main(m=70, n=40, k=50, p=0.3) < 1e-3
    # the mask really drops about p of the (positive) elements
    rng = np.random.default_rng(3)
    a = np.abs(rng.standard_normal((64, 64))).astype(np.float16)
    b = np.abs(rng.standard_normal((64, 64))).astype(np.float16)
    y = mod.launch(a, b, np.zeros((64, 64), np.float32), 1.0, 0.5, 99)
    assert 0.4 < np.mean(y == 0) < 0.6
