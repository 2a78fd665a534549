"""A paged KV cache stored in FP4 (e2m1) with per-(token, head) block scales.

**Format** (`FP4KVCache`), for `num_pages` pages of `PAGE = 64` tokens, `heads` KV heads
and head size `D`:

| array | dtype | shape | what |
|---|---|---|---|
| `k_pages`, `v_pages` | uint8 | `[num_pages, heads, 64, D/2]` | packed e2m1 (`tilec.fp4` order) |
| `k_scales`, `v_scales` | e8m0 (MX) / e4m3 (NV) | `[num_pages, heads, 64, D/block]` | a scale per `block` values |

MX: `block = 32`, float8_e8m0fnu scales (`scale = 2^(floor(log2 amax) - 2)`); NV: `block = 16`,
float8_e4m3fn scales (`amax / 6` rounded to e4m3, no per-tensor scale: |values| up to
6 * 448 = 2688 are represented).  Head-major pages keep the 64 tokens of one (page, head)
contiguous (D/2 * 64 bytes; 4 KiB of K for D = 128), which is what decode reads.  A token
at position `pos` of a sequence lives in page `page_table[seq, pos // 64]`, row `pos % 64`;
its *slot* is `page * 64 + pos % 64` (`slots_for`).  `FP4KVCache.empty` fills the scales
with NaN codes, so a slot that was never written dequantizes to NaN.

**Kernels** (written in tilec, one program per token, all heads at once):

    compress_kv(k, v, cache, slots)      # k, v [tokens, heads, D] fp16/bf16/f32 -> the cache
    k, v = decompress_kv(cache, slots)   # fp16 [tokens, heads, D] (dtype= to change)

`slots` int32 `[tokens]`: a decode step appends one token per sequence, a prefill writes a
sequence's tokens in bulk; both are the same call.  Arrays are numpy (CPU backend, or the
PTX simulator with `TILEC_TARGET=sim:...`), CPU torch tensors (run on the CPU backend in
place) or torch CUDA tensors (GPU).

    cache = FP4KVCache.empty(num_pages=16, heads=8, head_dim=128, fmt="mx")
    compress_kv(k, v, cache, slots_for(page_table, seq_ids, positions))
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np

import tilec as ct

PAGE = 64
FORMATS = {"mx": (32, "float8_e8m0fnu"), "nv": (16, "float8_e4m3fn")}
_NAN_CODE = {"float8_e8m0fnu": 0xFF, "float8_e4m3fn": 0x7F}

__all__ = ["FP4KVCache", "PAGE", "compress_kv", "decompress_kv", "slots_for"]


# ----------------------------------------------------------------------------- kernels


def _compress_one(X, P, S, t, page, row, H, D, B, NV):
    x = ct.load_tile(X, offset=[t, 0, 0], size=[1, H, D]).reshape([H, D])
    if NV:
        q, s = ct.quantize(x, block=B, scale_dtype=ct.float8_e4m3fn)
    else:
        q, s = ct.quantize(x, block=B, scale_dtype=ct.float8_e8m0fnu)
    ct.store_tile(P, offset=[page, 0, row, 0], tile=q.reshape([1, H, 1, D]))
    ct.store_tile(S, offset=[page, 0, row, 0], tile=s.reshape([1, H, 1, D // B]))


@ct.kernel
def _compress(K: ct.Tensor, V: ct.Tensor, SLOT: ct.Tensor, KP: ct.Tensor, VP: ct.Tensor, KS: ct.Tensor,
              VS: ct.Tensor, H: ct.Constant[int], D: ct.Constant[int], B: ct.Constant[int],
              NV: ct.Constant[bool]):
    t = ct.tile_idx(0)
    slot = ct.load_tile(SLOT, offset=[t], size=[1]).sum()
    page = slot // 64
    row = slot % 64
    _compress_one(K, KP, KS, t, page, row, H, D, B, NV)
    _compress_one(V, VP, VS, t, page, row, H, D, B, NV)


def _decompress_one(P, S, X, t, page, row, H, D, B):
    q = ct.load_tile(P, offset=[page, 0, row, 0], size=[1, H, 1, D]).reshape([H, D])
    s = ct.load_tile(S, offset=[page, 0, row, 0], size=[1, H, 1, D // B], padding=1.0).reshape([H, D // B])
    ct.store_tile(X, offset=[t, 0, 0], tile=ct.dequantize(q, s, block=B).reshape([1, H, D]))


@ct.kernel
def _decompress(KP: ct.Tensor, VP: ct.Tensor, KS: ct.Tensor, VS: ct.Tensor, SLOT: ct.Tensor, K: ct.Tensor,
                V: ct.Tensor, H: ct.Constant[int], D: ct.Constant[int], B: ct.Constant[int]):
    t = ct.tile_idx(0)
    slot = ct.load_tile(SLOT, offset=[t], size=[1]).sum()
    page = slot // 64
    row = slot % 64
    _decompress_one(KP, KS, K, t, page, row, H, D, B)
    _decompress_one(VP, VS, V, t, page, row, H, D, B)


# ----------------------------------------------------------------------------- the cache


def _is_torch(a) -> bool:
    return type(a).__module__.startswith("torch")


def _is_cuda(a) -> bool:
    return _is_torch(a) and a.device.type == "cuda"


def host_view(a):
    """A numpy view of a CPU torch tensor (fp8 dtypes through ml_dtypes; shares memory, so
    kernels write into the tensor); numpy arrays and CUDA tensors pass through."""
    if not _is_torch(a) or _is_cuda(a):
        return a
    name = str(a.dtype).removeprefix("torch.")
    if name in ("float8_e8m0fnu", "float8_e4m3fn", "float8_e5m2", "bfloat16"):
        import torch

        raw = a.view(torch.uint8 if name != "bfloat16" else torch.int16).numpy()
        return raw.view(getattr(ml_dtypes, name))
    return a.numpy()


@dataclass
class FP4KVCache:
    """Paged FP4 K/V storage (the module docstring has the format).  The arrays are numpy
    or torch tensors (CPU or CUDA), all on one device."""

    k_pages: object
    v_pages: object
    k_scales: object
    v_scales: object
    fmt: str = "mx"

    @property
    def block(self) -> int:
        return FORMATS[self.fmt][0]

    @property
    def num_pages(self) -> int:
        return int(self.k_pages.shape[0])

    @property
    def heads(self) -> int:
        return int(self.k_pages.shape[1])

    @property
    def head_dim(self) -> int:
        return 2 * int(self.k_pages.shape[3])

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """The logical shape of the K (and V) pages: [num_pages, heads, 64, head_dim]."""
        return (self.num_pages, self.heads, PAGE, self.head_dim)

    def nbytes(self) -> int:
        """Bytes of K and V pages and scales together."""
        return 2 * (self.num_pages * self.heads * PAGE * (self.head_dim // 2 + self.head_dim // self.block))

    @classmethod
    def empty(cls, num_pages: int, heads: int, head_dim: int, fmt: str = "mx", device=None) -> "FP4KVCache":
        """A cache whose scales are all NaN codes (unwritten slots dequantize to NaN).
        `device`: None for numpy arrays, else a torch device ("cpu", "cuda")."""
        if fmt not in FORMATS:
            raise ValueError(f"fmt must be one of {sorted(FORMATS)}, got {fmt!r}")
        block, sname = FORMATS[fmt]
        if head_dim % block or head_dim % 4:
            raise ValueError(f"head_dim {head_dim} must be a multiple of the {fmt} block {block}")
        pshape = (num_pages, heads, PAGE, head_dim // 2)
        sshape = (num_pages, heads, PAGE, head_dim // block)
        if device is None:
            mk = [np.zeros(pshape, np.uint8) for _ in range(2)]
            sc = [np.full(sshape, _NAN_CODE[sname], np.uint8).view(getattr(ml_dtypes, sname)) for _ in range(2)]
        else:
            import torch

            mk = [torch.zeros(pshape, dtype=torch.uint8, device=device) for _ in range(2)]
            sc = [torch.full(sshape, _NAN_CODE[sname], dtype=torch.uint8, device=device).view(getattr(torch, sname))
                  for _ in range(2)]
        return cls(mk[0], mk[1], sc[0], sc[1], fmt)

    def kernel_args(self) -> tuple:
        """(k_pages, v_pages, k_scales, v_scales) as kernel arguments (fp4 tensors)."""
        kp, vp = host_view(self.k_pages), host_view(self.v_pages)
        return (ct.fp4_tensor(kp, self.shape), ct.fp4_tensor(vp, self.shape),
                host_view(self.k_scales), host_view(self.v_scales))


def slots_for(page_table, seq_ids, positions):
    """Cache slots (`page * 64 + pos % 64`, int32) of the tokens at `positions` of sequences
    `seq_ids` (page_table int32 [batch, max_pages]); numpy or torch, like `page_table`."""
    pages = page_table[seq_ids, positions // PAGE]
    out = pages * PAGE + positions % PAGE
    return out.int() if _is_torch(out) else np.asarray(out, np.int32)


def _check_tokens(name: str, x, heads: int, head_dim: int) -> None:
    if len(x.shape) != 3 or int(x.shape[1]) != heads or int(x.shape[2]) != head_dim:
        raise ValueError(f"{name} must be [tokens, {heads}, {head_dim}] (the cache's heads and head_dim), "
                         f"got {list(x.shape)}")


def _check_slots(slots, cache: FP4KVCache) -> None:
    """Slots of host arrays (numpy, CPU torch) must lie in the cache: the kernels' bounds checks
    would otherwise drop the write / read zeros silently.  (CUDA slots are not read back: that
    would synchronise every decode step.)"""
    if _is_cuda(slots) or not int(slots.shape[0]):
        return
    s = np.asarray(host_view(slots))
    lo, hi, n = int(s.min()), int(s.max()), cache.num_pages * PAGE
    if lo < 0 or hi >= n:
        raise ValueError(f"cache slot {lo if lo < 0 else hi} is outside the cache's {n} slots "
                         f"({cache.num_pages} pages of {PAGE})")


def compress_kv(k, v, cache: FP4KVCache, slots) -> None:
    """Quantize `k`, `v` ([tokens, heads, D], fp16 / bf16 / f32) into `cache` at `slots`
    (int32 [tokens], `slots_for`): token i's head h goes to page `slots[i] // 64`, row
    `slots[i] % 64`, with one scale per `cache.block` elements."""
    _check_tokens("k", k, cache.heads, cache.head_dim)
    _check_tokens("v", v, cache.heads, cache.head_dim)
    n = int(k.shape[0])
    if int(v.shape[0]) != n or int(slots.shape[0]) != n:
        raise ValueError(f"k, v and slots must have the same number of tokens, got "
                         f"{int(k.shape[0])}, {int(v.shape[0])}, {int(slots.shape[0])}")
    if n == 0:
        return
    _check_slots(slots, cache)
    kp, vp, ks, vs = cache.kernel_args()
    _compress[(n,)](host_view(k), host_view(v), host_view(slots), kp, vp, ks, vs, cache.heads, cache.head_dim,
                    cache.block, cache.fmt == "nv")


def decompress_kv(cache: FP4KVCache, slots, dtype="float16"):
    """The K and V vectors at `slots` (int32 [tokens]) dequantized: two [tokens, heads, D]
    arrays of `dtype` (float16, bfloat16 or float32), on the cache's device."""
    n, shape = int(slots.shape[0]), (int(slots.shape[0]), cache.heads, cache.head_dim)
    if _is_torch(cache.k_pages):
        import torch

        k, v = (torch.empty(shape, dtype=getattr(torch, dtype), device=cache.k_pages.device) for _ in range(2))
    else:
        npd = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float32": np.float32}[dtype]
        k, v = (np.empty(shape, npd) for _ in range(2))
    if n:
        _check_slots(slots, cache)
        kp, vp, ks, vs = cache.kernel_args()
        _decompress[(n,)](kp, vp, ks, vs, host_view(slots), host_view(k), host_view(v), cache.heads,
                          cache.head_dim, cache.block)
    return k, v
