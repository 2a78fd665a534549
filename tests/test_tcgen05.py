"""sm_100a matmuls on the 5th-generation tensor cores (backends/ptx/lower_tcgen05.py), without a
Blackwell GPU: the examples use tcgen05 (checked on the PTX text), ptxas accepts them with no
spills, and the simulator (backends/sim: TMEM, tcgen05.mma/commit/ld/st, mbarrier, with misuse
detection) computes what the CPU backend computes.  Unsupported matmuls fall back correctly."""

from __future__ import annotations

import re

import ml_dtypes
import numpy as np
import pytest

import ptx_kernels as K
import tilec as ct
from tilec import dtypes as dt
from tilec.backends.ptx.descriptors import Sm100InstrDescriptor, Sm100SmemDescriptor
from tilec.driver import CompileOptions, compile_kernel
from tilec.frontend.tracer import ConstantSpec, ScalarSpec, TensorSpec
from test_ptx_compile import needs_ptxas

BF16 = ml_dtypes.bfloat16
F16 = np.float16
C = ConstantSpec


def _t(d, rank):
    return TensorSpec(d, (None,) * rank)


def _ptx(kernel, specs, num_warps: int | None = None) -> str:
    return compile_kernel(kernel, specs, "sm_100a", CompileOptions(num_warps=num_warps)).gpu.ptx


def _run_sim(kernel, grid, args, num_warps: int | None = None) -> list:
    """`ptx_kernels.run_sim` on sm_100a with a num_warps override."""
    from tilec.backends.sim.launch import run_ptx_kernel

    args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    specs, values = kernel.bind(tuple(args))
    run_ptx_kernel(compile_kernel(kernel, specs, "sm_100a", CompileOptions(num_warps=num_warps)).gpu, values, grid)
    return K.outputs(args)


def _loop_body(ptx: str) -> str:
    """The text of the first scf.for loop: from its head label to its end label."""
    head = re.search(r"^\$L_for_\d+:", ptx, re.M)
    end = re.search(r"^\$L_endfor_\d+:", ptx, re.M)
    return ptx[head.start():end.start()]


# ---------------------------------------------------------------------------- the examples

def _t16(d, rank):
    """A tensor whose base and rows are 16-byte aligned (what the launch finds for most
    arrays): TMA can read it, so the matmul K loop becomes the TMA pipeline."""
    return TensorSpec(d, (None,) * rank, div16=True)


#: id -> (example, kernel, specs with 128-row tiles, number of matmuls, num_warps, TMA pipelines);
#: the configurations bench/RESULTS.md reports under "sm_100a (ptxas)"
EXAMPLES = {
    "matmul": ("matmul", "matmul_kernel",
               [_t(dt.float16, 2), _t(dt.float16, 2), _t(dt.float32, 2), C(128), C(64), C(32)], 1, 4, 0),
    "matmul-tma": ("matmul", "matmul_kernel",
                   [_t16(dt.float16, 2), _t16(dt.float16, 2), _t16(dt.float32, 2), C(128), C(128), C(64)], 1, 4, 1),
    "matmul_relu_dropout": ("matmul_relu_dropout", "matmul_relu_scale_dropout",
                            [_t(dt.float16, 2), _t(dt.float16, 2), _t(dt.float32, 2), ScalarSpec(dt.float32),
                             ScalarSpec(dt.float32), ScalarSpec(dt.int32), C(128), C(64), C(32)], 1, 4, 0),
    "matmul_relu_dropout-tma": ("matmul_relu_dropout", "matmul_relu_scale_dropout",
                                [_t16(dt.float16, 2), _t16(dt.float16, 2), _t16(dt.float32, 2), ScalarSpec(dt.float32),
                                 ScalarSpec(dt.float32), ScalarSpec(dt.int32), C(128), C(64), C(32)], 1, 4, 1),
    "flash_attention": ("flash_attention", "flash_attention_fwd",
                        [_t16(dt.float16, 4)] * 4 + [ScalarSpec(dt.float32), C(128), C(64), C(64), C(True)], 2, 8, 0),
}


def _example_ptx(example, name) -> str:
    ex, kname, specs, _, nw, _ = EXAMPLES[name]
    return _ptx(getattr(example(ex), kname), specs, nw)


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_uses_tcgen05(example, name):
    _, _, _, n_matmuls, _, n_pipelines = EXAMPLES[name]
    ptx = _example_ptx(example, name)
    assert ".version 8.6" in ptx and ".target sm_100a" in ptx
    assert ptx.count("// tcgen05 matmul") + ptx.count("// tcgen05 pipeline ") == n_matmuls
    assert ptx.count("// tcgen05 pipeline ") == n_pipelines
    assert ("cp.async.bulk.tensor.2d" in ptx) == bool(n_pipelines)
    assert "mma.sync" not in ptx
    for ins in ("tcgen05.alloc.cta_group::1.sync.aligned.shared::cta.b32",
                "tcgen05.relinquish_alloc_permit.cta_group::1.sync.aligned",
                "tcgen05.mma.cta_group::1.kind::f16",
                "tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64",
                "mbarrier.try_wait.parity.shared::cta.b64",
                "tcgen05.ld.sync.aligned.32x32b.", "tcgen05.wait::ld.sync.aligned",
                "tcgen05.dealloc.cta_group::1.sync.aligned.b32",
                "tcgen05.fence::before_thread_sync", "tcgen05.fence::after_thread_sync"):
        assert ins in ptx, ins
    # operands written by threads (generic proxy) are fenced for the tensor cores' async proxy;
    # TMA-fed ones are written by the async proxy itself
    assert ("fence.proxy.async.shared::cta" in ptx) == (n_matmuls > n_pipelines)
    # one allocation and one free per kernel, both at the top level (outside every loop)
    assert ptx.count("tcgen05.alloc.") == 1 and ptx.count("tcgen05.dealloc.") == 1
    loop = re.search(r"^\$L_(tc_role_)?for_\d+:", ptx, re.M).start()
    assert ptx.index("tcgen05.alloc.") < loop
    assert re.search(r"tcgen05\.dealloc[^\n]*\n\$L_tc_dealloc_done_\d+:\n\tret;\n}\n$", ptx)


def test_matmul_accumulator_stays_in_tmem_across_the_k_loop(example):
    ptx = _example_ptx(example, "matmul")
    body = _loop_body(ptx)
    assert "tcgen05.mma." in body and "tcgen05.commit." in body
    assert "tcgen05.ld." not in body and "tcgen05.st." not in body   # nothing moves D in the loop
    assert "accumulator resident in TMEM" in body


def test_flash_attention_rescaled_accumulator_goes_through_tmem(example):
    """The P @ V accumulator is rescaled every iteration (acc * alpha): it enters TMEM with
    tcgen05.st and comes back with tcgen05.ld inside the loop; Q @ K^T starts from zero."""
    ptx = _example_ptx(example, "flash_attention")
    body = _loop_body(ptx)
    assert body.count("tcgen05.st.sync.aligned.32x32b") >= 1 and body.count("// tcgen05 matmul") == 2


# ---------------------------------------------------------------------------- descriptors in the PTX


def test_descriptor_immediates_decode_to_the_staged_layout(example):
    ptx = _example_ptx(example, "matmul")
    idescs = {int(m, 16) for m in re.findall(r"tcgen05\.mma\.\S+ \[[^]]+\], %rd\d+, %rd\d+, (0x[0-9A-F]+),", ptx)}
    assert idescs == {Sm100InstrDescriptor.for_mma("f16", "f16", "f16", "f32", M=128, N=64).encode()}
    d = Sm100InstrDescriptor.decode(idescs.pop())
    assert (d.m_dim << 4, d.n_dim << 3, d.a_major, d.b_major) == (128, 64, 0, 0)
    smem = {Sm100SmemDescriptor.decode(int(m, 16)) for m in re.findall(r"or\.b64 %rd\d+, %rd\d+, (0x[0-9A-F]{16});", ptx)}
    # A [128 x 32] and B^T [64 x 32] f16: 64-byte rows = 4 core matrices 128 B apart (LBO), 8-row groups 512 B apart
    assert {(s.lbo << 4, s.sbo << 4, s.version, s.swizzle.name) for s in smem} == {(128, 512, 1, "NONE")}


def test_operand_layout_is_what_the_descriptor_describes():
    """Operand.byte_offset (where the emitter writes element (r, k)) is where the simulator's
    descriptor reader (operands.matrix_index, the PTX ISA K-major no-swizzle canonical layout)
    finds it, for every K step of the MMA."""
    from tilec.backends.ptx.lower_tcgen05 import LBO, Operand
    from tilec.backends.sim.operands import decode_desc, matrix_index

    for esize, rows, K_ in ((2, 128, 64), (2, 64, 16), (4, 128, 24)):
        o = Operand(rows, K_, esize, 0)
        kstep = 32 // esize
        for ks in range(K_ // kstep):
            start, lbo, sbo, span = decode_desc(o.descriptor().encode() + (ks * 2 * LBO >> 4), 100)
            idx = matrix_index(start, lbo, sbo, span, rows, 32)
            want = np.array([[o.byte_offset(r, ks * kstep + b // esize) + b % esize for b in range(32)]
                             for r in range(rows)])
            np.testing.assert_array_equal(idx, want)


# ---------------------------------------------------------------------------- ptxas


@needs_ptxas
@pytest.mark.parametrize("name", list(EXAMPLES))
def test_example_assembles_without_spills(example, name):
    from tilec.backends.ptx.ptxas import assemble

    cubin, info = assemble(_example_ptx(example, name), "sm_100a", verbose=True)
    assert cubin[:4] == b"\x7fELF"
    assert re.search(r"0 bytes spill stores, 0 bytes spill loads", info), info
    assert re.search(r"Used \d+ registers", info), info


# ---------------------------------------------------------------------------- simulator vs CPU


@ct.kernel
def mm_once(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int],
            BK: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    a = ct.load_tile(A, offset=[i * BM, 0], size=[BM, BK])
    b = ct.load_tile(B, offset=[0, j * BN], size=[BK, BN])
    ct.store_tile(C, offset=[i * BM, j * BN], tile=ct.matmul(a, b))


@ct.kernel
def mm_acc_init(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int],
                BK: ct.Constant[int]):
    i = ct.tile_idx(0)
    j = ct.tile_idx(1)
    acc = ct.load_tile(C, offset=[i * BM, j * BN], size=[BM, BN]) * 0.5
    for k in range(0, A.shape[1], BK):
        a = ct.load_tile(A, offset=[i * BM, k], size=[BM, BK])
        b = ct.load_tile(B, offset=[k, j * BN], size=[BK, BN])
        acc = ct.matmul(a, b) + acc
    ct.store_tile(C, offset=[i * BM, j * BN], tile=acc)


def _mm_args(d, M, N, Kd, blk, init=False):
    def make(rng):
        c = rng.standard_normal((M, N)).astype(np.float32) if init else K._out((M, N), np.float32)
        return [rng.standard_normal((M, Kd)).astype(d), rng.standard_normal((Kd, N)).astype(d), c, *blk]
    return make, (-(-M // blk[0]), -(-N // blk[1]))


@ct.kernel
def mm_two_tiles(A: ct.Tensor, B: ct.Tensor, C: ct.Tensor, BM: ct.Constant[int], BN: ct.Constant[int],
                 BK: ct.Constant[int]):
    """Two output tiles per program: the K loop (and its TMA pipeline) runs twice, so the stage
    and phase counters carry over from one run to the next."""
    for t in range(2):
        i = ct.tile_idx(0) * 2 + t
        j = ct.tile_idx(1)
        acc = ct.zeros([BM, BN])
        for k in range(0, A.shape[1], BK):
            a = ct.load_tile(A, offset=[i * BM, k], size=[BM, BK])
            b = ct.load_tile(B, offset=[k, j * BN], size=[BK, BN])
            acc += a @ b
        ct.store_tile(C, offset=[i * BM, j * BN], tile=acc)


#: (id, kernel, dtype, (M, N, K), (BM, BN, BK), acc init, path): ragged shapes, small sizes.
#: path "regs": operands staged from registers (`TILEC_PTX_TCGEN05_TMA=0`; also what rows that are
#: not 16-byte aligned, loops without a K-loop shape and f32 get); "tma": the K loop is the TMA
#: pipeline (16-byte aligned rows)
SIM_CASES = [
    ("kloop-f16-128x64x32", K.matmul_2d, F16, (150, 100, 70), (128, 64, 32), False, "regs"),
    ("kloop-bf16-128x32x16", K.matmul_2d, BF16, (140, 40, 40), (128, 32, 16), False, "regs"),
    ("kloop-f16-M64-padded", K.matmul_2d, F16, (100, 50, 40), (64, 32, 16), False, "regs"),
    ("kloop-f32-3xtf32", K.matmul_2d, np.float32, (150, 40, 40), (128, 32, 16), False, "regs"),
    ("kloop-f32-3xtf32-128x64x32", K.matmul_2d, np.float32, (130, 64, 48), (128, 64, 32), False, "regs"),
    ("kloop-f16-128x128x64", K.matmul_2d, F16, (140, 130, 100), (128, 128, 64), False, "regs"),
    ("kloop-8warps-f16-128x256x64", K.matmul_2d_8warps, F16, (130, 260, 70), (128, 256, 64), False, "regs"),
    ("kloop-8warps-f16", K.matmul_2d_8warps, F16, (130, 70, 90), (128, 64, 32), False, "regs"),
    ("kloop-8warps-bf16-M64", K.matmul_2d_8warps, BF16, (130, 70, 90), (64, 64, 48), False, "regs"),
    ("once-N8", mm_once, F16, (128, 8, 16), (128, 8, 16), False, "regs"),
    ("once-N24", mm_once, F16, (128, 48, 32), (128, 24, 32), False, "regs"),
    ("once-M256-two-blocks", mm_once, F16, (256, 64, 64), (256, 64, 64), False, "regs"),
    ("once-N320-two-chunks", mm_once, BF16, (128, 320, 16), (128, 320, 16), False, "regs"),
    ("once-f32-M64", mm_once, np.float32, (64, 16, 8), (64, 16, 8), False, "regs"),
    ("acc-init-f16", mm_acc_init, F16, (128, 70, 72), (128, 32, 32), True, "regs"),
    ("acc-init-f32", mm_acc_init, np.float32, (128, 64, 64), (128, 32, 32), True, "regs"),
    ("tma-f16-128x64x32-SW64", K.matmul_2d, F16, (200, 144, 96), (128, 64, 32), False, "tma"),
    ("tma-f16-128x128x64-two-B-panels", K.matmul_2d, F16, (200, 160, 192), (128, 128, 64), False, "tma"),
    ("tma-bf16-M64-padded", K.matmul_2d, BF16, (100, 96, 80), (64, 64, 64), False, "tma"),
    ("tma-f16-M256-SW32", K.matmul_2d, F16, (300, 64, 48), (256, 64, 16), False, "tma"),
    ("tma-8warps-f16-128x128x32", K.matmul_2d_8warps, F16, (130, 144, 96), (128, 128, 32), False, "tma"),
    ("tma-8warps-f16-128x128x64", K.matmul_2d_8warps, F16, (140, 160, 112), (128, 128, 64), False, "tma"),
    ("tma-acc-init-f16", mm_acc_init, F16, (128, 64, 64), (128, 32, 32), True, "tma"),
    ("tma-pipeline-runs-twice", mm_two_tiles, F16, (512, 64, 160), (128, 64, 32), False, "tma"),
]


@pytest.mark.parametrize("case", SIM_CASES, ids=[c[0] for c in SIM_CASES])
def test_matmul_on_simulator_matches_cpu(case, monkeypatch):
    name, kernel, d, (M, N, Kd), blk, init, path = case
    if path == "regs":   # whatever the alignment, stage the operands from registers
        monkeypatch.setenv("TILEC_PTX_TCGEN05_TMA", "0")
    make, grid = _mm_args(d, M, N, Kd, blk, init)
    if kernel is mm_two_tiles:
        grid = (-(-M // (2 * blk[0])), grid[1])
    args = make(np.random.default_rng(3))
    specs, _ = kernel.bind(tuple(args))
    ptx = _ptx(kernel, specs)
    assert "tcgen05.mma.cta_group::1" in ptx
    assert ("// tcgen05 pipeline" in ptx) == (path == "tma")
    assert K.max_error(K.run_cpu(kernel, grid, args), K.run_sim(kernel, grid, args, "sm_100a")) <= 2e-5


def _examples_small():
    rng = np.random.default_rng(0)
    yield "matmul", "matmul_kernel", (2, 2), [rng.standard_normal((150, 70)).astype(F16),
                                             rng.standard_normal((70, 100)).astype(F16),
                                             np.full((150, 100), np.nan, np.float32), 128, 64, 32], 2e-5
    yield "matmul", "matmul_kernel", (2, 2), [rng.standard_normal((150, 96)).astype(F16),   # 16-byte rows
                                             rng.standard_normal((96, 112)).astype(F16),
                                             np.full((150, 112), np.nan, np.float32), 128, 64, 32], 2e-5
    yield "matmul_relu_dropout", "matmul_relu_scale_dropout", (3, 2), [
        rng.standard_normal((150, 50)).astype(F16), rng.standard_normal((50, 60)).astype(F16),
        np.full((150, 60), np.nan, np.float32), 0.5, 0.3, 1234, 64, 32, 16], 2e-5
    yield "matmul_relu_dropout", "matmul_relu_scale_dropout", (2, 2), [
        rng.standard_normal((150, 70)).astype(F16), rng.standard_normal((70, 90)).astype(F16),
        np.full((150, 90), np.nan, np.float32), 0.5, 0.3, 99, 128, 64, 32], 2e-5
    yield "matmul_relu_dropout", "matmul_relu_scale_dropout", (2, 2), [       # 16-byte rows
        rng.standard_normal((150, 80)).astype(F16), rng.standard_normal((80, 96)).astype(F16),
        np.full((150, 96), np.nan, np.float32), 0.5, 0.3, 7, 128, 64, 32], 2e-5
    for causal, D, nw in ((False, 32, 4), (True, 64, 8)):
        q, k, v = (rng.standard_normal((1, 2, 100, D)).astype(F16) for _ in range(3))
        yield "flash_attention", "flash_attention_fwd", (1, 2, 1), [q, k, v, np.full(q.shape, np.nan, F16),
                                                                     D ** -0.5, 128, 64, D, causal], 1e-3, nw


@pytest.mark.parametrize("item", list(_examples_small()), ids=lambda it: it[0])
@pytest.mark.parametrize("path", ["regs", "tma"])
def test_example_on_simulator_matches_cpu(example, item, path, monkeypatch):
    """Each example on both operand paths (the TMA pipeline where the K loop allows it: the
    matmul examples' loops; flash attention's loads are reshaped 4-D tiles, so it has none)."""
    name, kname, grid, args, tol, *nw = item
    nw = nw[0] if nw else None
    monkeypatch.setenv("TILEC_PTX_TCGEN05_TMA", "1" if path == "tma" else "0")
    kernel = getattr(example(name), kname)
    specs, _ = kernel.bind(tuple(args))
    ptx = _ptx(kernel, specs, nw)
    assert "tcgen05.mma.cta_group::1.kind::f16" in ptx
    pipelined = path == "tma" and name != "flash_attention" and all(
        a.shape[-1] * a.itemsize % 16 == 0 for a in args if isinstance(a, np.ndarray))
    assert ("// tcgen05 pipeline" in ptx) == pipelined
    assert K.max_error(K.run_cpu(kernel, grid, args), _run_sim(kernel, grid, args, nw)) <= tol


#: protocol steps the lowering relies on, each undone in the emitted PTX (pattern, replacement):
#: the simulator must reject the kernel with the message, or (None) the numbers must change
MUTATIONS = {
    "fence.proxy.async": (r"\tfence\.proxy\.async\.shared::cta;\n", "", "written through the generic proxy"),
    "bar.sync before the MMA": (r"(tcgen05\.fence::before_thread_sync;\n)\tbar\.sync 0;\n(\t@%p\d+ bra \$L_tc_issued)",
                                r"\1\2", "with no bar.sync in between"),
    "mbarrier wait": (r"\tmbarrier\.try_wait[^\n]*\n\t@![^\n]*\n", "", "not known to be complete"),
    "tcgen05.commit": (r"\ttcgen05\.commit[^\n]*\n", "", "deadlock"),
    "tcgen05.dealloc": (r"\ttcgen05\.dealloc[^\n]*\n", "", "TMEM still allocated"),
    "lane quarter": (r"(and\.b32 %r\d+, %r\d+, )96;", r"\g<1>0;", "may access TMEM lanes"),
    "TMEM zero-fill": (r"\ttcgen05\.st\.sync[^\n]*\n", "", None),
}


#: the same for the TMA pipeline: each role's waits, the stage's expected bytes, the final commit
PIPELINE_MUTATIONS = {
    "producer's empty-stage wait": (r"(xor\.b32 %r\d+, %r\d+, 1;\n\tmov\.u32 %r\d+, tc_empty0;\n\tmad[^\n]*\n)"
                                    r"\$L_tc_pipe_wait_\d+:\n\tmbarrier[^\n]*\n\t@![^\n]*\n", r"\1",
                                    "more arrivals than its expected count"),
    "issuer's full-stage wait": (r"\$L_tc_pipe_wait_\d+:\n\tmbarrier[^\n]*\n\t@![^\n]*\n(\ttcgen05\.fence::after)", r"\1",
                                 "still in flight"),
    "expect_tx": (r"\tmbarrier\.arrive\.expect_tx[^\n]*\n", "", "deadlock"),
    "accumulator commit": (r"(\$L_tc_role_endfor_\d+:\n\telect\.sync[^\n]*\n\t@![^\n]*\n)\ttcgen05\.commit[^\n]*\n",
                           r"\1", "deadlock"),
}


def _mutated_runs(path: str, monkeypatch):
    """(run(ptx) -> C, the emitted PTX) for a K-loop matmul on the register or TMA path."""
    from tilec.backends.sim import simulate
    from tilec.backends.sim.launch import launch_grid, ptx_kernel_args

    make, grid = _mm_args(F16, 150, 64, 160, (128, 64, 32))           # 16-byte rows
    specs, values = K.matmul_2d.bind(tuple(make(np.random.default_rng(5))))
    with monkeypatch.context() as m:
        m.setenv("TILEC_PTX_TCGEN05_TMA", "1" if path == "tma" else "0")
        gpu = compile_kernel(K.matmul_2d, specs, "sm_100a").gpu
    assert ("// tcgen05 pipeline" in gpu.ptx) == (path == "tma")

    def run(ptx):
        vals = [v.copy() if isinstance(v, np.ndarray) else v for v in values]
        simulate(ptx, gpu.name, launch_grid(grid), (gpu.num_threads, 1, 1), ptx_kernel_args(gpu, vals, grid),
                 shared_bytes=gpu.smem_bytes, arch="sm_100a")
        return vals[2]
    return run, gpu.ptx


@pytest.mark.parametrize("path, what", [("regs", w) for w in MUTATIONS] + [("tma", w) for w in PIPELINE_MUTATIONS])
def test_simulator_rejects_the_kernel_without_each_protocol_step(path, what, monkeypatch):
    from tilec.backends.sim import SimError

    run, ptx = _mutated_runs(path, monkeypatch)
    good = run(ptx)
    pattern, repl, message = (MUTATIONS if path == "regs" else PIPELINE_MUTATIONS)[what]
    bad_ptx = re.sub(pattern, repl, ptx)
    assert bad_ptx != ptx
    if message is None:
        assert not np.allclose(run(bad_ptx), good, equal_nan=True)
        return
    with pytest.raises(SimError, match=message):
        run(bad_ptx)


# ---------------------------------------------------------------------------- fallbacks


def test_int8_matmul_falls_back_and_stays_correct():
    """No kind::i8 here: an int8 matmul on sm_100a takes the CUDA-core path, still exact."""
    name, kernel, grid, make, tol, _ = next(c for c in K.CASES if c[0] == "int8-matmul")
    args = make(np.random.default_rng(1))
    specs, _ = kernel.bind(tuple(args))
    ptx = _ptx(kernel, specs)
    assert "tcgen05" not in ptx and "mad.lo.s32" in ptx
    assert K.max_error(K.run_cpu(kernel, grid, args), K.run_sim(kernel, grid, args, "sm_100a")) <= tol


@pytest.mark.parametrize("blk, fallback", [((32, 32, 32), "mma.sync.aligned.m16n8k16"),   # M = 32: not % 64
                                           ((64, 32, 24), "fma.rn.f32")])                 # K = 24: not % 16
def test_shapes_tcgen05_cannot_take_fall_back(blk, fallback):
    make, grid = _mm_args(F16, 70, 40, 48, blk)
    args = make(np.random.default_rng(2))
    specs, _ = K.matmul_2d.bind(tuple(args))
    ptx = _ptx(K.matmul_2d, specs)
    assert "tcgen05" not in ptx and fallback in ptx
    assert K.max_error(K.run_cpu(K.matmul_2d, grid, args), K.run_sim(K.matmul_2d, grid, args, "sm_100a")) <= 5e-5


def test_switches(monkeypatch):
    make, grid = _mm_args(np.float32, 64, 16, 8, (64, 16, 8))
    args = make(np.random.default_rng(4))
    specs, _ = mm_once.bind(tuple(args))
    assert _ptx(mm_once, specs).count("tcgen05.mma.") == 3            # 3xTF32 by default
    monkeypatch.setenv("TILEC_PTX_TF32", "1")
    assert _ptx(mm_once, specs).count("tcgen05.mma.") == 1            # plain kind::tf32
    monkeypatch.setenv("TILEC_PTX_TCGEN05", "0")
    assert "tcgen05" not in _ptx(mm_once, specs)                       # CUDA cores for f32
    f16 = _mm_args(F16, 64, 16, 16, (64, 16, 16))[0](np.random.default_rng(4))
    assert "mma.sync" in _ptx(mm_once, mm_once.bind(tuple(f16))[0])   # mma.sync for f16


def test_other_targets_are_untouched(example):
    _, kname, specs, _, _, _ = EXAMPLES["matmul"]
    for target in ("sm_80", "sm_90a"):
        ptx = compile_kernel(getattr(example("matmul"), kname), specs, target).gpu.ptx
        assert "tcgen05" not in ptx and "tc_mbar" not in ptx


# ---------------------------------------------------------------------------- simulator semantics

_COMMIT_PTX = """
.version 8.6
.target sm_100a
.address_size 64
.shared .align 1024 .b8 ops[8192];
.shared .align 8 .b64 bars[2];
.shared .align 4 .b32 slot;
.visible .entry k(.param .u64 out)
{
    .reg .pred %p<4>;
    .reg .b32 %r<48>;
    .reg .b64 %rd<4>;
    mov.u32 %r0, %tid.x;
    mov.u32 %r1, slot;
    mov.u32 %r2, bars;
    setp.ge.u32 %p0, %r0, 32;
    @%p0 bra A;
    tcgen05.alloc.cta_group::1.sync.aligned.shared::cta.b32 [%r1], 32;
    tcgen05.relinquish_alloc_permit.cta_group::1.sync.aligned;
A:
    setp.ne.u32 %p1, %r0, 0;
    @%p1 bra B;
    mbarrier.init.shared::cta.b64 [%r2], 1;
    mbarrier.init.shared::cta.b64 [%r2+8], 1;
    fence.mbarrier_init.release.cluster;
B:
    tcgen05.fence::before_thread_sync;
    bar.sync 0;
    tcgen05.fence::after_thread_sync;
    ld.shared.u32 %r3, [%r1];
    @%p1 bra C;
    mov.u32 %r4, ops;
    shr.u32 %r4, %r4, 4;
    cvt.u64.u32 %rd0, %r4;
    or.b64 %rd0, %rd0, 0x0000402000080000;
    setp.ne.u32 %p2, 0, 0;
    tcgen05.mma.cta_group::1.kind::f16 [%r3], %rd0, %rd0, 0x08040010, %p2;
    tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64 [%r2];
    tcgen05.commit.cta_group::1.mbarrier::arrive::one.shared::cluster.b64 [%r2+8];
C:
    mbarrier.try_wait.parity.shared::cta.b64 %p3, [%r2+8], 0;
    @!%p3 bra C;
    tcgen05.fence::after_thread_sync;
    and.b32 %r5, %r0, 96;
    shl.b32 %r5, %r5, 16;
    add.u32 %r5, %r3, %r5;
    tcgen05.ld.sync.aligned.32x32b.x8.b32 {%r8, %r9, %r10, %r11, %r12, %r13, %r14, %r15}, [%r5];
    tcgen05.wait::ld.sync.aligned;
    tcgen05.fence::before_thread_sync;
    bar.sync 0;
    @%p0 bra D;
    tcgen05.fence::after_thread_sync;
    tcgen05.dealloc.cta_group::1.sync.aligned.b32 %r3, 32;
D:
    ret;
}
"""


def test_simulator_commit_tracks_all_earlier_mmas_of_the_thread():
    """PTX ISA tcgen05.commit: the mbarrier tracks *every* prior async tcgen05 operation of the
    thread, so waiting on a second commit (after a first one nobody waits on) makes the MMA's
    accumulator readable: the pattern of a pipelined mainloop (commit per stage to its empty
    barrier, then once to the accumulator barrier)."""
    from tilec.backends.sim import simulate

    simulate(_COMMIT_PTX, "k", (1, 1, 1), (128, 1, 1), [("ptr", np.zeros(4, np.uint32))], arch="sm_100a")
