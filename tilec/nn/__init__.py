"""tilec.nn: library kernels written in tilec, callable from PyTorch (and numpy).

FP4 inference building blocks (issue 6):
  - `quantize_fp4`: per-block FP4 (e2m1) quantization on the device (MX or NV scales).
  - `FP4Linear`: a `torch.nn.Module` holding packed FP4 weights with block scales
    (`FP4Linear.from_float(linear)`); W4A16: weights decoded in registers and fed to f16/bf16 MMA.
  - `compress_kv` / `decompress_kv`: KV-cache to FP4 with per-(token, head) block scales
    (`FP4KVCache` holds the pages, `slots_for` maps sequence positions to cache slots).
  - `paged_attention_decode`: decode attention reading FP4 K/V pages through a page table.

Names load on first use, so `import tilec.nn` does not import torch.
"""

import importlib

_EXPORTS = {
    "quantize_fp4": "tilec.nn.quantize",
    "FP4Linear": "tilec.nn.linear",
    "compress_kv": "tilec.nn.kv_cache",
    "decompress_kv": "tilec.nn.kv_cache",
    "FP4KVCache": "tilec.nn.kv_cache",
    "slots_for": "tilec.nn.kv_cache",
    "paged_attention_decode": "tilec.nn.paged_attention",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'tilec.nn' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
