"""Programmatic dependent launch (`launch_pdl=True`): where the kernels wait, and that chained
launches still see their predecessors' results (GPU)."""

import sys
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

import tilec as ct
from tilec import fp4
from tilec.driver import CompileOptions, compile_kernel
from tilec.frontend.tracer import ConstantSpec, TensorSpec
from tilec import dtypes as dt

sys.path.insert(0, str(Path(__file__).parent))
from gpu_support import torch_cuda_ready  # noqa: E402
from test_w4a16 import _specs, w4a16_f32  # noqa: E402


@ct.kernel
def add_into(X: ct.Tensor, Y: ct.Tensor, Z: ct.Tensor, BLOCK: ct.Constant[int]):
    """Z = X + Y, one BLOCK per program."""
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * BLOCK], size=[BLOCK])
    y = ct.load_tile(Y, offset=[i * BLOCK], size=[BLOCK])
    ct.store_tile(Z, offset=[i * BLOCK], tile=x + y)


def _lines(ptx: str) -> list[str]:
    return [line.strip() for line in ptx.splitlines()]


def _first(lines: list[str], pred, start: int = 0) -> int:
    return next(i for i in range(start, len(lines)) if pred(lines[i]))


def _boxes_of(lines: list[str], arg: int) -> list[int]:
    """Lines of the TMA copies through a tensor map of kernel argument `arg` (the map's address
    is `mov.u64 %a, p<arg>_tma<k>; cvta.param.u64 %b, %a`, the copy names %b)."""
    raw = {s.split()[1].rstrip(",") for s in lines if s.startswith("mov.u64") and f" p{arg}_tma" in s}
    regs = {s.split()[1].rstrip(",") for s in lines if s.startswith("cvta.param.u64")
            and s.split()[2].rstrip(";") in raw}
    return [i for i, s in enumerate(lines) if s.startswith("cp.async.bulk.tensor")
            and s.split("[")[2].split(",")[0] in regs]


def test_touches_global_classifies_memory_instructions():
    from tilec.backends.ptx.emitter import _touches_global

    for line in ("ld.global.nc.v4.b32 {%r1, %r2, %r3, %r4}, [%rd1];", "@%p1 st.global.f32 [%rd2], %f1;",
                 "red.global.add.f32 [%rd1], %f2;", "cp.async.cg.shared.global [%r1], [%rd1], 16, %r2;",
                 "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%r1], [%rd1, {%r2, %r3}], [%r4];",
                 "ld.b32 %r1, [%rd1];"):                        # generic addressing may be global
        assert _touches_global("\t" + line), line
    for line in ("ld.param.u64 %rd1, [p0];", "ld.shared.v4.b32 {%r1, %r2, %r3, %r4}, [%r5];",
                 "mbarrier.try_wait.parity.shared::cta.b64 %p1, [%r1], %r2;", "cvta.to.global.u64 %rd2, %rd1;",
                 "add.u32 %r1, %r2, 1;", "// ld.global in a comment", "$L_loop_3:",
                 "@%p1 prefetch.tensormap [%rd3];"):          # a prefetch changes no result
        assert not _touches_global("\t" + line), line


def test_a_kernel_waits_at_entry():
    """Any kernel: it lets its successor launch at once and waits for its predecessor before its
    first global access; sm_80 has no griddepcontrol, so there the option changes nothing."""
    t = TensorSpec(dt.float32, (None,), True)
    specs = [t, t, t, ConstantSpec(128)]
    art = compile_kernel(add_into, specs, "sm_90a", CompileOptions(launch_pdl=True))
    lines = _lines(art.gpu.ptx)
    assert art.gpu.pdl
    trigger = _first(lines, lambda s: s.startswith("griddepcontrol.launch_dependents"))
    wait = _first(lines, lambda s: s.startswith("griddepcontrol.wait"))
    from tilec.backends.ptx.emitter import _touches_global

    assert trigger < wait < _first(lines, _touches_global)
    assert "griddepcontrol" not in compile_kernel(add_into, specs, "sm_90a").gpu.ptx
    art80 = compile_kernel(add_into, specs, "sm_80", CompileOptions(launch_pdl=True))
    assert "griddepcontrol" not in art80.gpu.ptx and not art80.gpu.pdl


@pytest.mark.parametrize("bm", [8, 16])
def test_w4a16_weight_prologue_runs_ahead_of_the_wait(bm):
    """The W4A16 loop takes the kernel's wait over: the TMA stream issues its prologue's weight
    and scale boxes first, waits, then reads activations (by ld.global at M <= 8, by TMA boxes
    from two n8 tiles up); the cp.async fallback copies its weight prologue, then waits.  No
    global access comes before the weight prologue."""
    art = compile_kernel(w4a16_f32, _specs(bm=bm), "sm_90a", CompileOptions(num_warps=16, launch_pdl=True))
    lines = _lines(art.gpu.ptx)
    waits = [i for i, s in enumerate(lines) if s.startswith("griddepcontrol.wait")]
    assert len(waits) == 2                                          # TMA stream, cp.async fallback
    from tilec.backends.ptx.emitter import _touches_global

    first_global = _first(lines, _touches_global)
    tma_wait, ring_wait = waits
    weight_boxes, act_boxes = _boxes_of(lines, 1), _boxes_of(lines, 0)
    assert first_global == weight_boxes[0] < tma_wait
    if bm == 16:
        assert act_boxes and min(act_boxes) > tma_wait
    else:
        assert not act_boxes and _first(lines, lambda s: "ld.global.nc" in s) > tma_wait
    ring_copies = [i for i, s in enumerate(lines) if "cp.async.cg.shared.global" in s]
    assert min(ring_copies) < ring_wait < _first(lines, lambda s: "ld.global.nc" in s, ring_wait)
    assert lines.index("griddepcontrol.launch_dependents;") < first_global
    assert len(art.cubin()) > 0


def test_w4a16_with_launch_pdl_in_the_simulator(monkeypatch):
    """The simulator runs griddepcontrol as a no-op: same results with and without the option."""
    monkeypatch.setenv("TILEC_TARGET", "sim:sm_90a")
    rng = np.random.default_rng(11)
    n, k = 64, 2048
    x = rng.standard_normal((16, k)).astype(np.float16)
    q, s = fp4.quantize(rng.standard_normal((n, k)).astype(np.float32), 32, ml_dtypes.float8_e8m0fnu)
    ref = x.astype(np.float64) @ fp4.dequantize(q, s, 32).astype(np.float64).T
    for bm in (8, 16):
        y = np.full((16, n), np.nan, np.float32)
        w4a16_f32[(16 // bm, 1)](x, ct.fp4_tensor(q, (n, k)), s, y, bm, n, 128, 32, num_warps=16, launch_pdl=True)
        assert float(np.max(np.abs(y - ref)) / np.max(np.abs(ref))) < 2e-6


# ------------------------------------------------------------------------------------ GPU

@pytest.mark.gpu
@pytest.mark.skipif(not torch_cuda_ready(), reason="needs an NVIDIA GPU with a CUDA driver")
def test_chained_launches_see_their_predecessor():
    """z <- z + y, 64 launches with launch_pdl, each reading what the one before wrote (and in a
    CUDA graph, where the dependencies become programmatic edges): exact integer sums."""
    import torch

    n = 1 << 20
    y = torch.arange(n, dtype=torch.float32, device="cuda") % 7
    for graph in (False, True):
        z = [torch.zeros(n, dtype=torch.float32, device="cuda") for _ in range(2)]
        launch = add_into[(n // 1024,)]

        def steps():
            for i in range(64):
                launch(z[i % 2], y, z[1 - i % 2], 1024, launch_pdl=True)
        if graph:
            steps()                                       # compile outside the capture
            z[0].zero_(), z[1].zero_()
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                steps()
            g.replay()
        else:
            steps()
        torch.cuda.synchronize()
        assert torch.equal(z[0], y * 64)


@pytest.mark.gpu
@pytest.mark.skipif(not torch_cuda_ready(), reason="needs an NVIDIA GPU with a CUDA driver")
@pytest.mark.parametrize("m", [1, 16])
def test_fp4_linear_chain_with_launch_pdl(m):
    """Three FP4Linear layers back to back, each reading the previous one's output while its own
    weights stream in ahead of the dependency wait: bit-identical to launches without PDL.  (8192
    outputs: 128 CTAs, no split-K, whose atomic adds would make the sums order-dependent.)"""
    import torch

    from tilec.nn import FP4Linear
    from tilec.nn.linear import plan

    torch.manual_seed(0)
    n = 8192
    assert plan(m, n, n)[1] == 1
    layers = [FP4Linear.from_float(torch.nn.Linear(n, n, bias=False, device="cuda", dtype=torch.float16), "mx")
              for _ in range(3)]
    x = torch.randn(m, n, dtype=torch.float16, device="cuda")

    def chain():
        h = x
        for layer in layers:
            h = layer(h)
        return h
    FP4Linear.launch_pdl = False
    try:
        ref = chain()
    finally:
        FP4Linear.launch_pdl = True
    for layer in layers:
        layer.__dict__.pop("_hot", None)
    outs = [chain() for _ in range(20)]                   # from the second call on: the PDL closure
    torch.cuda.synchronize()
    assert all(torch.equal(o, ref) for o in outs)
    assert all(layer._hot for layer in layers)


@ct.kernel
def w4a16_if(X: ct.Tensor, WQ: ct.Tensor, WS: ct.Tensor, Y: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int],
             BK: ct.Constant[int], BLOCK: ct.Constant[int]):
    """The W4A16 loop under a run-time condition."""
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.zeros([BM, BN], ct.float32)
    if X.shape[0] > 1:
        for k in range(X.shape[1] // BK):
            x = ct.load_tile(X, offset=[i * BM, k * BK], size=[BM, BK])
            wq = ct.load_tile(WQ, offset=[j * BN, k * BK], size=[BN, BK])
            ws = ct.load_tile(WS, offset=[j * BN, k * (BK // BLOCK)], size=[BN, BK // BLOCK])
            acc = ct.matmul(x, ct.dequantize(wq, ws, dtype=x.dtype).T, acc)
    ct.store_tile(Y, offset=[i * BM, j * BN], tile=acc)


def test_a_nested_w4a16_loop_keeps_the_entry_wait():
    """A W4A16 loop that not every path runs (here under an `if`) cannot take the wait over:
    the stores after the `if` must wait too, so the wait stays at the kernel's entry."""
    art = compile_kernel(w4a16_if, _specs(bm=8), "sm_90a", CompileOptions(num_warps=16, launch_pdl=True))
    lines = _lines(art.gpu.ptx)
    assert any("w4a16.mma_loop" in s for s in lines)
    waits = [i for i, s in enumerate(lines) if s.startswith("griddepcontrol.wait")]
    assert waits == [lines.index("griddepcontrol.launch_dependents;") + 1]
