"""`FP4Linear`: a `torch.nn.Module` holding FP4 (e2m1) weights with block scales (W4A16).

    fp4 = FP4Linear.from_float(linear, scale="mx")     # or "nv"; then fp4.cuda() / .to(device)
    y = fp4(x)                                         # x [..., in_features] f16 / bf16

The weight is stored like `nn.Linear.weight` [N, K], quantized by `quantize_fp4`: packed
uint8 [N, K/2] (two e2m1 per byte along K) with scales [N, K/32] e8m0 (MX) or [N, K/16]
e4m3 plus a per-tensor float32 scale (NV).  The forward pass is one tilec kernel,
`w4a16_kernel`: a K loop of `acc = matmul(x, dequantize(load(WQ), load(WS)).T, acc)`.  On
sm_90a / sm_80 the `tile-w4a16` pass turns that loop into `w4a16.mma_loop`: packed weights
streamed through a cp.async ring, decoded in registers, mma.sync f16/bf16 with swap-AB
(the fp16 weight never exists in memory).  Batch sizes M <= 16 (decode) use 8 or 16-token
tiles; when the weight rows give too few CTAs to fill the GPU, K is split over a third grid
axis and partial sums are added with `store_tile(..., mode="atomic_add")` into float32.
Larger M use 32-token tiles.  The result has the input's dtype; `bias` is added in float32.

Launches are plain `kernel[grid](...)` calls: the packed weight is an `FP4Tensor`, which the
JIT's generated fast launch path takes (tilec.runtime.fast_launch).  After the first CUDA call
of an input (shape, dtype, device) the module keeps a closure for it (`_hot`: output
allocation + one launch, after identity checks of the weight, scale and bias tensors), so a
steady-state decode call costs about as much host time as `torch.matmul` (bench/fp4.py).

Steady-state launches use programmatic dependent launch (`launch_pdl=True`, sm_90+; the class
attribute `launch_pdl` turns it off): the kernel may start while the previous kernel in the
stream finishes, and streams its first weight stages in while it waits for that kernel's
results (`griddepcontrol.wait` comes before the activations are read and the output is
written).  So the weights must not be written by the kernel just before: the closure checks
that the weight and scale tensors were not modified in place since it was made (torch's
version counters); a modified weight takes the general launch, which waits in full first.

CPU torch tensors run the same kernel on the CPU backend (exact f32 dequantize, numpy
matmul).  On sm_100a the kernel takes the generic lowering (tile.dequantize in registers, then
the f16 MMA; checked in the simulator, no Blackwell GPU was available): its block-scaled FP4
tensor cores (kind::mxf4 / mxf4nvf4) multiply FP4 by FP4, so they serve W4A4 products written
with `ct.scaled_matmul` (examples/fp4_matmul.py), not this W4A16 layer.
"""

from __future__ import annotations

import math

import numpy as np

import tilec as ct

from tilec.nn.quantize import FORMATS, _to_numpy, check_format, quantize_fp4

try:
    import torch
    _Module = torch.nn.Module
    _TENSOR = torch.Tensor
except ImportError:  # pragma: no cover - tilec.nn.FP4Linear needs torch
    torch = None
    _Module = object
    _TENSOR = None

#: weight rows per CTA (one warp per 16 rows; further warps split K inside the CTA), K per loop
#: iteration, TMA / cp.async stages, warps: the best of bench/fp4.py --sweep and
#: bench/w4a16_bounds.py on the H100 (K = N = 8192).  Decode (M <= 16) takes 4 stages: M = 1
#: 19.3 us against 20.5 with 3 and 21.5 with 6; M = 16 24.5 us against 25.9 with 3 (RESULTS.md).
BN, BK, STAGES_DECODE, STAGES_PREFILL = 64, 128, 4, 3
WARPS_DECODE, WARPS_PREFILL = 16, 8
#: SMs to fill with the split-K decode grid (H100 SXM has 132)
TARGET_CTAS = 132
_OPTS_DECODE = dict(num_warps=WARPS_DECODE, num_stages=STAGES_DECODE)
_OPTS_PREFILL = dict(num_warps=WARPS_PREFILL, num_stages=STAGES_PREFILL)


def launch_options(m: int) -> dict:
    """`num_warps` / `num_stages` of the launch for m tokens."""
    return _OPTS_DECODE if m <= 16 else _OPTS_PREFILL


@ct.kernel
def w4a16_kernel(X: ct.Tensor, WQ: ct.Tensor, WS: ct.Tensor, Bias: ct.Tensor, Y: ct.Tensor, g: float,
                 BM: ct.Constant[int], BN: ct.Constant[int], BK: ct.Constant[int], BLOCK: ct.Constant[int],
                 HAS_BIAS: ct.Constant[bool]):
    """Y[M, N] = (X @ deq(WQ, WS)^T) * g (+ Bias), one [BM, BN] tile per program."""
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.zeros([BM, BN], ct.float32)
    for k in range(X.shape[1] // BK):
        x = ct.load_tile(X, offset=[i * BM, k * BK], size=[BM, BK])
        wq = ct.load_tile(WQ, offset=[j * BN, k * BK], size=[BN, BK])
        ws = ct.load_tile(WS, offset=[j * BN, k * (BK // BLOCK)], size=[BN, BK // BLOCK])
        acc = ct.matmul(x, ct.dequantize(wq, ws, dtype=x.dtype).T, acc)
    out = acc * g
    if HAS_BIAS:
        out = out + ct.load_tile(Bias, offset=[j * BN], size=[BN])[None, :]
    ct.store_tile(Y, offset=[i * BM, j * BN], tile=out)


@ct.kernel
def w4a16_splitk_kernel(X: ct.Tensor, WQ: ct.Tensor, WS: ct.Tensor, Y: ct.Tensor, g: float,
                        BM: ct.Constant[int], BN: ct.Constant[int], BK: ct.Constant[int],
                        BLOCK: ct.Constant[int], SPLIT: ct.Constant[int]):
    """Y[M, N] (float32, zeroed) += the K slice tile_idx(2) of (X @ deq(WQ, WS)^T) * g."""
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    per = X.shape[1] // BK // SPLIT
    k0 = ct.tile_idx(2) * per
    acc = ct.zeros([BM, BN], ct.float32)
    for k in range(k0, k0 + per):
        x = ct.load_tile(X, offset=[i * BM, k * BK], size=[BM, BK])
        wq = ct.load_tile(WQ, offset=[j * BN, k * BK], size=[BN, BK])
        ws = ct.load_tile(WS, offset=[j * BN, k * (BK // BLOCK)], size=[BN, BK // BLOCK])
        acc = ct.matmul(x, ct.dequantize(wq, ws, dtype=x.dtype).T, acc)
    ct.store_tile(Y, offset=[i * BM, j * BN], tile=acc * g, mode="atomic_add")


def plan(m: int, n: int, k: int, bk: int = BK, bn: int = BN) -> tuple[int, int]:
    """(token tile BM, K split over CTAs) for an [m, k] @ [k, n] product: 8/16-token tiles for
    decode (m <= 16), 32 otherwise; for decode, K is split over a third grid axis (a power of
    two dividing k/bk, each part >= 2 chunks) while the grid has under TARGET_CTAS / 2 programs."""
    bm = 8 if m <= 8 else 16 if m <= 16 else 32
    split, chunks = 1, k // bk
    ctas = math.ceil(m / bm) * math.ceil(n / bn)
    while m <= 16 and ctas * split * 2 <= TARGET_CTAS and chunks % (split * 2) == 0 and chunks // (split * 2) >= 2:
        split *= 2
    return bm, split


class FP4Linear(_Module):
    """y = x @ W^T + b with W in FP4 (e2m1) and block scales; activations f16 or bf16."""

    #: steady-state CUDA launches overlap the previous kernel's tail (module docstring)
    launch_pdl = True

    def __init__(self, in_features: int, out_features: int, bias: bool = True, scale: str = "mx",
                 device=None, dtype=None):
        if torch is None:
            raise ImportError("FP4Linear needs torch")
        super().__init__()
        block, sdt = check_format(scale)
        if in_features % BK:
            raise ValueError(f"FP4Linear needs in_features to be a multiple of {BK}, got {in_features}")
        self.in_features, self.out_features, self.scale_format, self.block = in_features, out_features, scale, block
        self.register_buffer("weight_packed", torch.zeros((out_features, in_features // 2), dtype=torch.uint8,
                                                          device=device))
        self.register_buffer("weight_scale", torch.zeros((out_features, in_features // block),
                                                         dtype=getattr(torch, sdt.api_name), device=device))
        self.global_scale = 1.0
        self.bias = torch.nn.Parameter(torch.zeros(out_features, dtype=dtype or torch.float16, device=device),
                                       requires_grad=False) if bias else None

    @classmethod
    def from_float(cls, linear, scale: str = "mx") -> "FP4Linear":
        """Quantize an `nn.Linear`'s weight (on its device) with `quantize_fp4`; bias kept in the
        layer's dtype (f32 layers keep f16 bias)."""
        w = linear.weight.detach()
        bias_dtype = w.dtype if w.dtype in (torch.float16, torch.bfloat16) else torch.float16
        m = cls(linear.in_features, linear.out_features, linear.bias is not None, scale, device=w.device,
                dtype=bias_dtype)
        packed, scales, g = quantize_fp4(w.float(), scale)
        m.weight_packed.copy_(packed)
        m.weight_scale.copy_(scales)
        m.global_scale = 1.0 if g is None else g
        if linear.bias is not None:
            m.bias.data.copy_(linear.bias.detach().to(bias_dtype))
        return m

    def get_extra_state(self):
        return {"global_scale": float(self.global_scale)}

    def set_extra_state(self, state) -> None:
        self.global_scale = float(state["global_scale"])

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"scale={self.scale_format!r}")

    def dequantized_weight(self) -> np.ndarray:
        """The weight's values as float64 [N, K] (an independent host decode, for checks)."""
        from tilec import fp4

        scales = _to_numpy(self.weight_scale.cpu().view(torch.uint8)).view(FORMATS[self.scale_format][1].np_dtype)
        return fp4.dequantize(_to_numpy(self.weight_packed.cpu()), scales, self.block).astype(np.float64) \
            * self.global_scale

    def forward(self, x):
        """y [..., out_features] of x [..., in_features]: torch f16/bf16 (CUDA: on the GPU, CPU: on
        the CPU backend), or a numpy float16 / ml_dtypes.bfloat16 array (CPU backend, numpy out).

        A CUDA input of a (shape, dtype, device) seen before takes a prepared closure (`_hot`):
        output allocation plus one launch through the JIT's generated fast path."""
        hot = self.__dict__.get("_hot")
        if hot is not None and type(x) is _TENSOR:
            run = hot.get((x.shape, x.dtype, x.get_device()))
            if run is not None:
                y = run(self, x)
                if y is not None:
                    return y
        if x.shape[-1] != self.in_features:
            raise ValueError(f"FP4Linear expects inputs [..., {self.in_features}], got {list(x.shape)}")
        host = isinstance(x, np.ndarray)
        if host and x.dtype.name not in ("float16", "bfloat16") or not host and x.dtype not in (torch.float16,
                                                                                              torch.bfloat16):
            raise TypeError(f"FP4Linear takes float16 or bfloat16 activations, got {x.dtype}")
        lead = tuple(x.shape[:-1])
        x2 = x.reshape(-1, self.in_features)
        if x2.shape[0] == 0:
            y = np.zeros((0, self.out_features), x.dtype) if host else x.new_zeros((0, self.out_features))
        elif host:
            y = self._forward_host(np.ascontiguousarray(x2))
        elif x.device.type == "cuda":
            y = self._forward_cuda(x2.contiguous())
            self._remember_hot(x)
        else:
            y = self._forward_host(_to_numpy(x2))
            y = torch.from_numpy(y.view(np.int16)).view(torch.bfloat16) if x.dtype == torch.bfloat16 \
                else torch.from_numpy(y)
        return y.reshape(*lead, self.out_features)

    def _args(self, x2):
        wq = self.__dict__.get("_wq")
        if wq is None or wq.packed is not self.weight_packed:     # re-made after .to() / .cuda()
            wq = self.__dict__["_wq"] = ct.fp4_tensor(self.weight_packed, (self.out_features, self.in_features))
        return x2, wq, self.weight_scale

    def _forward_cuda(self, x2):
        m, n, k = x2.shape[0], self.out_features, self.in_features
        bm, split = plan(m, n, k)
        x2, wq, ws = self._args(x2)
        g = float(self.global_scale)
        # plain launches: `FP4Tensor` arguments take the JIT's generated fast launch path
        opts = launch_options(m)
        if split == 1:
            y = torch.empty((m, n), dtype=x2.dtype, device=x2.device)
            bias = self.bias if self.bias is not None else y
            w4a16_kernel[(ct.cdiv(m, bm), ct.cdiv(n, BN))](x2, wq, ws, bias, y, g, bm, BN, BK, self.block,
                                                           self.bias is not None, **opts)
            return y
        acc = torch.zeros((m, n), dtype=torch.float32, device=x2.device)
        w4a16_splitk_kernel[(ct.cdiv(m, bm), ct.cdiv(n, BN), split)](x2, wq, ws, acc, g, bm, BN, BK, self.block,
                                                                     split, **opts)
        if self.bias is not None:
            acc += self.bias.float()
        return acc.to(x2.dtype)

    def _remember_hot(self, x) -> None:
        """Prepare the steady-state CUDA forward of inputs like `x` (after a successful general
        call): the closure re-checks that the weight, scale and bias tensors are still the ones it
        captured and that the input is contiguous (else it returns None: the general path)."""
        hot = self.__dict__.setdefault("_hot", {})
        if len(hot) >= 64:
            hot.clear()
        n, k, block = self.out_features, self.in_features, self.block
        lead = tuple(x.shape[:-1])
        m = math.prod(lead)
        bm, split = plan(m, n, k)
        _, wq, scales = self._args(None)
        packed, bias = self.weight_packed, self.bias
        dtype, dev, flat = x.dtype, x.device, x.dim() == 2
        out_shape = lead + (n,)
        opts = dict(launch_options(m), launch_pdl=bool(self.launch_pdl))
        if split == 1:
            launch = w4a16_kernel[(ct.cdiv(m, bm), ct.cdiv(n, BN))]._with_options(opts)
        else:
            launch = w4a16_splitk_kernel[(ct.cdiv(m, bm), ct.cdiv(n, BN), split)]._with_options(opts)
        if launch is None:
            return
        versions = (packed._version, scales._version)

        def run(me, x):
            bufs = me._buffers        # `me`: the calling module (a deep copy shares this closure)
            if bufs.get("weight_packed") is not packed or bufs.get("weight_scale") is not scales \
                    or me._parameters.get("bias") is not bias or not x.is_contiguous() \
                    or (packed._version, scales._version) != versions:
                return None
            x2 = x if flat else x.view(m, k)
            if split == 1:
                y = torch.empty(out_shape, dtype=dtype, device=dev)
                y2 = y if flat else y.view(m, n)
                launch(x2, wq, scales, y2 if bias is None else bias, y2, float(me.global_scale), bm, BN, BK, block,
                       bias is not None)
                return y
            acc = torch.zeros((m, n), dtype=torch.float32, device=dev)
            launch(x2, wq, scales, acc, float(me.global_scale), bm, BN, BK, block, split)
            if bias is not None:
                acc += bias.float()
            return acc.to(dtype).view(out_shape)

        hot[(x.shape, dtype, x.get_device())] = run

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_hot", None)                  # closures do not pickle; rebuilt on the next call
        return state

    def _apply(self, fn, *args, **kwargs):
        self.__dict__.pop("_hot", None)          # .to() / .cuda() / .half(): new tensors, new closures
        return super()._apply(fn, *args, **kwargs)

    def _forward_host(self, xn: np.ndarray) -> np.ndarray:
        """The same kernel on the CPU backend (numpy in, numpy out; TILEC_TARGET=sim:... runs it
        in the PTX simulator)."""
        m, n, k = xn.shape[0], self.out_features, self.in_features
        bm, _ = plan(m, n, k)
        wq = ct.fp4_tensor(_to_numpy(self.weight_packed.cpu()), (n, k))
        ws = _to_numpy(self.weight_scale.cpu().view(torch.uint8)).view(FORMATS[self.scale_format][1].np_dtype)
        y = np.zeros((m, n), xn.dtype)
        bias = y
        if self.bias is not None:
            bias = _to_numpy(self.bias.detach().cpu().float())     # exact: f16 / bf16 -> f32
        w4a16_kernel[(ct.cdiv(m, bm), ct.cdiv(n, BN))](xn, wq, ws, bias, y, float(self.global_scale), bm, BN, BK,
                                                       self.block, self.bias is not None,
                                                       **launch_options(m))
        return y
