"""ptxas driver and CUDA runtime layer.

CPU-only tests (no marker) check ptxas discovery and assembly, the argument packer and
`cuda_available()`.  Tests in `TestOnGPU` are marked ``gpu`` and skip without a driver and
a device; on a GPU they assemble and JIT hand-written PTX, launch it on torch tensors,
exercise TMA descriptors and print the launch overhead.

The two modules under test are imported through the package when it imports, and
otherwise straight from their files: neither needs xDSL, so this file also runs where
only torch and cuda-bindings are installed (the lent GPU machine).
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _import(name: str, relpath: str):
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - the package may need xDSL; the module itself does not
        key = "_tilec_test_" + relpath.replace("/", "_").removesuffix(".py")
        if key in sys.modules:
            return sys.modules[key]
        spec = importlib.util.spec_from_file_location(key, ROOT / relpath)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[key] = mod
        spec.loader.exec_module(mod)
        return mod


ptxas = _import("tilec.backends.ptx.ptxas", "backends/ptx/ptxas.py")
rt = _import("tilec.runtime.cuda", "tilec/runtime/cuda.py")

try:
    ptxas.find_ptxas()
    HAVE_PTXAS = True
except ptxas.PtxasNotFoundError:
    HAVE_PTXAS = False
needs_ptxas = pytest.mark.skipif(not HAVE_PTXAS, reason="ptxas not found")

# ----------------------------------------------------------------------------- PTX sources

VADD_PTX = """\
.version @VERSION@
.target @TARGET@
.address_size 64

// c[i] = a[i] + b[i] for i < n (fp32)
.visible .entry vadd(
    .param .u64 a,
    .param .u64 b,
    .param .u64 c,
    .param .u32 n)
{
    .reg .pred %p<2>;
    .reg .b32  %r<6>;
    .reg .b64  %rd<8>;
    .reg .f32  %f<4>;

    ld.param.u64   %rd1, [a];
    ld.param.u64   %rd2, [b];
    ld.param.u64   %rd3, [c];
    ld.param.u32   %r1, [n];
    mov.u32        %r2, %ctaid.x;
    mov.u32        %r3, %ntid.x;
    mov.u32        %r4, %tid.x;
    mad.lo.s32     %r5, %r2, %r3, %r4;
    setp.ge.u32    %p1, %r5, %r1;
    @%p1 bra       DONE;
    cvta.to.global.u64 %rd1, %rd1;
    cvta.to.global.u64 %rd2, %rd2;
    cvta.to.global.u64 %rd3, %rd3;
    mul.wide.u32   %rd4, %r5, 4;
    add.s64        %rd5, %rd1, %rd4;
    add.s64        %rd6, %rd2, %rd4;
    add.s64        %rd7, %rd3, %rd4;
    ld.global.f32  %f1, [%rd5];
    ld.global.f32  %f2, [%rd6];
    add.f32        %f3, %f1, %f2;
    st.global.f32  [%rd7], %f3;
DONE:
    ret;
}
"""

BAD_LINE = "    add.f32        %f3, %f1, %f2;"


def vadd_ptx(target: str = "sm_90a", version: str | None = None) -> str:
    version = version or ("8.6" if target.startswith("sm_100") else "8.0")
    return VADD_PTX.replace("@VERSION@", version).replace("@TARGET@", target)


# Writes each scalar argument, widened to 64 bits, to out[0..6]: checks the packer's
# encodings and that each kernelParams pointer reaches the right value.
PROBE_PTX = """\
.version 8.0
.target sm_90a
.address_size 64

.visible .entry probe(
    .param .u64 out,
    .param .u32 a,
    .param .u64 b,
    .param .f32 c,
    .param .s8  d,
    .param .f64 e,
    .param .u16 g,
    .param .s64 h)
{
    .reg .b32 %r<4>;
    .reg .b64 %rd<8>;

    ld.param.u64   %rd0, [out];
    cvta.to.global.u64 %rd0, %rd0;
    ld.param.u32   %r0, [a];
    cvt.u64.u32    %rd1, %r0;
    st.global.u64  [%rd0], %rd1;
    ld.param.u64   %rd2, [b];
    st.global.u64  [%rd0+8], %rd2;
    ld.param.b32   %r1, [c];
    cvt.u64.u32    %rd3, %r1;
    st.global.u64  [%rd0+16], %rd3;
    ld.param.s8    %r2, [d];
    cvt.s64.s32    %rd4, %r2;
    st.global.u64  [%rd0+24], %rd4;
    ld.param.b64   %rd5, [e];
    st.global.u64  [%rd0+32], %rd5;
    ld.param.u16   %r3, [g];
    cvt.u64.u32    %rd6, %r3;
    st.global.u64  [%rd0+40], %rd6;
    ld.param.s64   %rd7, [h];
    st.global.u64  [%rd0+48], %rd7;
    ret;
}
"""

# TMA round trip: each CTA loads the 32x16 fp32 box at (bx*32, by*16) into shared memory
# (mbarrier with expect_tx), CTA (0,0) dumps the raw shared-memory bytes to `dump`, then the
# box is TMA-stored to the same coordinates of the destination.  Out-of-bounds parts of edge
# boxes are zero-filled on load and clipped on store.
TMA_PTX = """\
.version 8.0
.target sm_90a
.address_size 64

.visible .entry tma_roundtrip(
    .param .align 64 .b8 tmap_src[128],
    .param .align 64 .b8 tmap_dst[128],
    .param .u64 dump)
{
    .reg .b32  %r<12>;
    .reg .b64  %rd<8>;
    .reg .f32  %f<2>;
    .reg .pred %p<4>;
    .shared .align 1024 .b8 tile[2048];
    .shared .align 8 .b64 bar;

    mov.u32        %r0, %tid.x;
    mov.u32        %r1, tile;
    mov.u32        %r2, bar;
    mov.u32        %r3, %ctaid.x;
    shl.b32        %r3, %r3, 5;
    mov.u32        %r4, %ctaid.y;
    shl.b32        %r4, %r4, 4;
    mov.u64        %rd0, tmap_src;
    cvta.param.u64 %rd0, %rd0;
    mov.u64        %rd1, tmap_dst;
    cvta.param.u64 %rd1, %rd1;
    setp.eq.u32    %p0, %r0, 0;

    @!%p0 bra      SYNC0;
    mbarrier.init.shared::cta.b64 [%r2], 1;
    fence.mbarrier_init.release.cluster;
SYNC0:
    bar.sync       0;
    @!%p0 bra      WAIT;
    mbarrier.arrive.expect_tx.shared::cta.b64 %rd2, [%r2], 2048;
    cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%r1], [%rd0, {%r3, %r4}], [%r2];
WAIT:
    mov.u32        %r5, 0;
WAIT_LOOP:
    mbarrier.try_wait.parity.shared::cta.b64 %p1, [%r2], %r5;
    @!%p1 bra      WAIT_LOOP;

    or.b32         %r6, %r3, %r4;
    setp.ne.u32    %p2, %r6, 0;
    @%p2 bra       STORE;
    ld.param.u64   %rd3, [dump];
    cvta.to.global.u64 %rd3, %rd3;
    shl.b32        %r7, %r0, 2;
DUMP_LOOP:
    add.u32        %r8, %r1, %r7;
    ld.shared.f32  %f0, [%r8];
    cvt.u64.u32    %rd4, %r7;
    add.s64        %rd5, %rd3, %rd4;
    st.global.f32  [%rd5], %f0;
    add.u32        %r7, %r7, 512;
    setp.lt.u32    %p3, %r7, 2048;
    @%p3 bra       DUMP_LOOP;
STORE:
    fence.proxy.async.shared::cta;
    bar.sync       0;
    @!%p0 bra      DONE;
    cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [%rd1, {%r3, %r4}], [%r1];
    cp.async.bulk.commit_group;
    cp.async.bulk.wait_group.read 0;
DONE:
    ret;
}
"""

# Dynamic shared memory above the 48 KB default: thread t writes t near the top of the
# `nbytes` region and reads back the value of thread (ntid-1-t).
DSMEM_PTX = """\
.version 8.0
.target sm_90a
.address_size 64

.extern .shared .align 16 .b8 dsmem[];

.visible .entry dsmem_reverse(
    .param .u64 out,
    .param .u32 nbytes)
{
    .reg .b32 %r<12>;
    .reg .b64 %rd<4>;

    mov.u32        %r0, %tid.x;
    mov.u32        %r1, %ntid.x;
    ld.param.u32   %r2, [nbytes];
    mov.u32        %r3, dsmem;
    add.u32        %r4, %r3, %r2;
    sub.u32        %r4, %r4, 4;
    shl.b32        %r5, %r0, 2;
    sub.u32        %r6, %r4, %r5;
    st.shared.u32  [%r6], %r0;
    bar.sync       0;
    sub.u32        %r7, %r1, 1;
    sub.u32        %r7, %r7, %r0;
    shl.b32        %r8, %r7, 2;
    sub.u32        %r9, %r4, %r8;
    ld.shared.u32  %r10, [%r9];
    ld.param.u64   %rd0, [out];
    cvta.to.global.u64 %rd0, %rd0;
    mul.wide.u32   %rd1, %r0, 4;
    add.s64        %rd2, %rd0, %rd1;
    st.global.u32  [%rd2], %r10;
    ret;
}
"""

NOOP_PTX = """\
.version 8.0
.target sm_90a
.address_size 64

.visible .entry noop(
    .param .u64 a,
    .param .u64 b,
    .param .u64 c,
    .param .u32 n)
{
    ret;
}
"""

# ----------------------------------------------------------------------------- CPU-only


@needs_ptxas
def test_ptxas_found_with_version():
    exe = ptxas.find_ptxas()
    assert os.access(exe, os.X_OK)
    version = ptxas.ptxas_version()
    assert ptxas.ptxas_version_tuple()[0] >= 12, version
    print(f"\nptxas {version} at {exe}")


@needs_ptxas
@pytest.mark.parametrize("arch", ["sm_80", "sm_90a", "sm_100a"])
def test_assemble_vadd(arch):
    cubin, info = ptxas.assemble(vadd_ptx(arch), arch, verbose=True)
    assert cubin[:4] == b"\x7fELF"
    assert "vadd" in info and "registers" in info, info


@needs_ptxas
@pytest.mark.parametrize("name,src", [("probe", PROBE_PTX), ("tma", TMA_PTX), ("dsmem", DSMEM_PTX),
                                      ("noop", NOOP_PTX)])
def test_assemble_gpu_test_kernels(name, src):
    cubin, _ = ptxas.assemble(src, "sm_90a")
    assert cubin[:4] == b"\x7fELF"


@needs_ptxas
def test_bad_ptx_raises_with_line():
    src = vadd_ptx("sm_90a").replace(BAD_LINE, "    add.f32        %f3, %f1, %f9;")
    bad_line = src.splitlines().index("    add.f32        %f3, %f1, %f9;") + 1
    with pytest.raises(ptxas.PtxasError) as info:
        ptxas.assemble(src, "sm_90a", name="vadd.ptx")
    err = info.value
    assert bad_line in err.lines, err.log
    assert f"vadd.ptx, line {bad_line}" in str(err)
    assert "%f9" in str(err)          # ptxas' message and the quoted source line
    assert "tilec-ptxas-" not in str(err)


def test_bad_arch_and_missing_ptxas(monkeypatch):
    with pytest.raises(ValueError, match="arch"):
        ptxas.assemble(vadd_ptx(), "90a")
    monkeypatch.setenv("TILEC_PTXAS", "/nonexistent/ptxas")
    with pytest.raises(ptxas.PtxasNotFoundError, match="TILEC_PTXAS"):
        ptxas.find_ptxas()


def test_cuda_available_never_raises():
    ok = rt.cuda_available()
    assert isinstance(ok, bool)
    assert rt.cuda_available() is ok  # cached, still no exception
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        assert ok is False  # no driver here


def test_runtime_module_imports_neither_xdsl_nor_torch():
    code = ("import importlib.util, sys; "
            f"s = importlib.util.spec_from_file_location('m', {str(ROOT / 'tilec/runtime/cuda.py')!r}); "
            "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); m.cuda_available(); "
            "bad = [n for n in ('xdsl', 'torch') if n in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_packed_args_layout():
    kinds = ["i32", "ptr", "f32", "tensormap", "i8", "u64", "f64", "u16"]
    pa = rt.PackedArgs(kinds)
    tm = bytes(range(128))
    pa.pack(-5, 2**40 + 16, 1.5, tm, -3, 2**63 + 1, 2.25, 65535)
    p = [pa._params[i] for i in range(len(kinds))]
    assert p[3] % 64 == 0  # the tensormap is 64-byte aligned
    assert all(addr % rt.ARG_KINDS[k][2] == 0 for addr, k in zip(p, kinds))
    got = [struct.unpack("<" + rt.ARG_KINDS[k][0], ctypes.string_at(addr, rt.ARG_KINDS[k][1]))[0]
           for addr, k in zip(p, kinds)]
    assert got == [-5, 2**40 + 16, 1.5, tm, -3, 2**63 + 1, 2.25, 65535]
    with pytest.raises(ValueError, match="unknown kernel argument kind"):
        rt.PackedArgs(["pointer"])


def test_device_pointer_host_arrays_rejected():
    np = pytest.importorskip("numpy")
    assert rt.device_pointer(1234) == 1234
    with pytest.raises(ValueError, match="CPU"):
        rt.device_pointer(np.zeros(4, np.float32))

    class FakeCai:
        __cuda_array_interface__ = {"data": (0xDEAD00, False), "shape": (1,), "typestr": "<f4", "version": 3}

    assert rt.device_pointer(FakeCai()) == 0xDEAD00
    with pytest.raises(TypeError):
        rt.device_pointer(object())


def test_arch_for_compute_capability():
    f = rt.arch_for_compute_capability
    assert [f(9, 0), f(8, 0), f(8, 6), f(10, 0), f(12, 0)] == ["sm_90a", "sm_80", "sm_86", "sm_100a", "sm_120a"]


# ----------------------------------------------------------------------------- GPU

GPU_MARKS = [pytest.mark.gpu, pytest.mark.skipif(not rt.cuda_available(), reason="no CUDA driver/GPU")]


@pytest.fixture(scope="module")
def torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    torch.cuda.init()
    return torch


@pytest.fixture(scope="module")
def vadd_cubin_fn(torch):
    arch = rt.current_device_arch()
    cubin, _ = ptxas.assemble(vadd_ptx(arch), arch)
    return rt.load_module(cubin).function("vadd")


def _cdiv(a, b):
    return (a + b - 1) // b


class TestOnGPU:
    pytestmark = GPU_MARKS

    def test_device_facts(self, torch):
        dev = rt.current_device()
        print(f"\ndevice {dev}  arch {rt.current_device_arch()}  cuda-bindings "
              f"{importlib.import_module('cuda.bindings').__version__}  torch {torch.__version__}  "
              f"ptxas {ptxas.ptxas_version() if HAVE_PTXAS else None}")
        assert rt.current_device_arch().startswith("sm_")
        # the current context is the primary one that torch uses too
        drv = importlib.import_module("cuda.bindings.driver")
        err, ctx = drv.cuCtxGetCurrent()
        assert int(err) == 0 and int(ctx) == int(rt._get_state().context)

    @pytest.mark.parametrize("impl", ["ctypes", "bindings"])
    def test_vadd_cubin_ragged(self, torch, vadd_cubin_fn, impl):
        previous = rt._impl
        rt.set_launch_impl(impl)
        try:
            n = 1_000_003
            a = torch.randn(n, device="cuda")
            b = torch.randn(n, device="cuda")
            c = torch.full((n,), float("nan"), device="cuda")
            pad = torch.full((8,), -7.0, device="cuda")  # guard: nothing beyond n is written
            cc = torch.cat([c, pad])
            rt.launch(vadd_cubin_fn, _cdiv(n, 256), 256, 0, None,
                      [("ptr", a), ("ptr", b), ("ptr", cc), ("u32", n)])
            torch.cuda.synchronize()
            torch.testing.assert_close(cc[:n], a + b, rtol=0, atol=0)
            assert (cc[n:] == -7.0).all()
            print(f"\nvadd {impl}: {vadd_cubin_fn}")
        finally:
            rt.set_launch_impl(previous)

    def test_vadd_launcher_on_torch_stream(self, torch, vadd_cubin_fn):
        n = 123_457
        a, b = torch.randn(n, device="cuda"), torch.randn(n, device="cuda")
        c = torch.empty_like(a)
        k = vadd_cubin_fn.launcher(("ptr", "ptr", "ptr", "u32"), block=128)
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())  # a, b were made on the default stream
        with torch.cuda.stream(s):
            assert rt.current_stream() == s.cuda_stream
            k(_cdiv(n, 128), a.data_ptr(), b.data_ptr(), c.data_ptr(), n)  # stream=None: torch's current
            d = c * 2  # torch work ordered after ours on the same stream
        s.synchronize()
        torch.testing.assert_close(d, (a + b) * 2)

    def test_ptx_text_jit(self, torch):
        fn = rt.load_module(vadd_ptx("sm_90a", "8.0")).function("vadd")
        n = 4097
        a, b = torch.randn(n, device="cuda"), torch.randn(n, device="cuda")
        c = torch.empty_like(a)
        rt.launch(fn, _cdiv(n, 128), 128, 0, torch.cuda.current_stream(),
                  [("ptr", a), ("ptr", b), ("ptr", c), ("u32", n)])
        torch.cuda.synchronize()
        torch.testing.assert_close(c, a + b)
        # which PTX ISA versions does this driver JIT?  (reported, not asserted)
        results = {}
        for v in ("8.8", "9.0", "9.1", "9.2"):
            try:
                rt.load_module(vadd_ptx("sm_90a", v))
                results[v] = "ok"
            except rt.CudaError as e:
                results[v] = f"CUresult {e.code}: {str(e).splitlines()[-1][:120]}"
        print(f"\ndriver JIT by .version: {results}")
        bad = vadd_ptx("sm_90a").replace(BAD_LINE, "    add.f32        %f3, %f1, %f9;")
        with pytest.raises(rt.CudaError) as info:
            rt.load_module(bad)
        print(f"JIT error for bad PTX: {info.value}")

    def test_argument_kinds(self, torch):
        cubin, _ = ptxas.assemble(PROBE_PTX, "sm_90a")
        fn = rt.load_module(cubin).function("probe")
        out = torch.zeros(8, dtype=torch.int64, device="cuda")
        vals = dict(a=0xFFFFFFF0, b=-(2**40) + 3, c=1.25, d=-100, e=-2.5, g=65000, h=-(2**62) - 7)
        rt.launch(fn, 1, 1, 0, None, [("ptr", out), ("u32", vals["a"]), ("i64", vals["b"]), ("f32", vals["c"]),
                                      ("i8", vals["d"]), ("f64", vals["e"]), ("u16", vals["g"]),
                                      ("i64", vals["h"])])
        torch.cuda.synchronize()
        got = out.cpu().tolist()
        f32_bits = struct.unpack("<I", struct.pack("<f", vals["c"]))[0]
        f64_bits = struct.unpack("<q", struct.pack("<d", vals["e"]))[0]
        assert got[:7] == [vals["a"], vals["b"], f32_bits, vals["d"], f64_bits, vals["g"], vals["h"]]

    def test_device_pointer_kinds(self, torch):
        x = torch.arange(16, device="cuda", dtype=torch.float32)[3:]
        assert rt.device_pointer(x) == x.data_ptr()

        class CaiOnly:
            __cuda_array_interface__ = x.__cuda_array_interface__

        class DlpackOnly:
            def __dlpack__(self, stream=None):
                return x.__dlpack__()

            def __dlpack_device__(self):
                return x.__dlpack_device__()

        assert rt.device_pointer(CaiOnly()) == x.data_ptr()
        assert rt.device_pointer(DlpackOnly()) == x.data_ptr()
        with pytest.raises(ValueError, match="CUDA"):
            rt.device_pointer(torch.zeros(3))

    def test_dynamic_shared_memory(self, torch):
        cubin, _ = ptxas.assemble(DSMEM_PTX, "sm_90a")
        fn = rt.load_module(cubin).function("dsmem_reverse")
        nbytes = 200 * 1024
        out = torch.zeros(256, dtype=torch.int32, device="cuda")
        rt.launch(fn, 1, 256, nbytes, None, [("ptr", out), ("u32", nbytes)])
        torch.cuda.synchronize()
        assert fn.max_dynamic_smem == nbytes
        assert out.tolist() == list(range(255, -1, -1))
        with pytest.raises(ValueError, match="exceeds the device limit"):
            rt.launch(fn, 1, 256, 300 * 1024, None, [("ptr", out), ("u32", nbytes)])

    def test_launch_overhead(self, torch):
        cubin, _ = ptxas.assemble(NOOP_PTX, "sm_90a")
        fn = rt.load_module(cubin).function("noop")
        a = torch.zeros(4, device="cuda")
        pa, n = a.data_ptr(), 4
        stream = torch.cuda.current_stream().cuda_stream
        kinds = ("ptr", "ptr", "ptr", "u32")

        def per_launch_us(body, batch=400, batches=15):
            body(); torch.cuda.synchronize()
            best = []
            for _ in range(batches):  # batches stay below the launch-queue depth: host cost only
                t0 = time.perf_counter()
                for _ in range(batch):
                    body()
                best.append((time.perf_counter() - t0) / batch * 1e6)
                torch.cuda.synchronize()
            best.sort()
            return best[len(best) // 2]

        results = {}
        previous = rt._impl
        layout = fn.layout(kinds)
        results["pack only (struct.pack_into)"] = per_launch_us(lambda: layout.pack(pa, pa, pa, n))
        for impl in ("ctypes", "bindings"):
            rt.set_launch_impl(impl)
            k = fn.launcher(kinds, block=32)
            results[f"{impl}: launcher, explicit stream"] = per_launch_us(lambda: k(1, pa, pa, pa, n, stream=stream))
            results[f"{impl}: launcher, torch current stream"] = per_launch_us(lambda: k(1, pa, pa, pa, n))
            args_int = [("ptr", pa), ("ptr", pa), ("ptr", pa), ("u32", n)]
            results[f"{impl}: launch(), (kind, int) list"] = per_launch_us(
                lambda: rt.launch(fn, 1, 32, 0, stream, args_int))
            args_t = [("ptr", a), ("ptr", a), ("ptr", a), ("u32", n)]
            results[f"{impl}: launch(), (kind, tensor) list, stream=None"] = per_launch_us(
                lambda: rt.launch(fn, 1, 32, 0, None, args_t))
        rt.set_launch_impl(previous)
        drv = importlib.import_module("cuda.bindings.driver")
        packed = layout.pack(pa, pa, pa, n)
        results["raw cuda.bindings cuLaunchKernel (reference)"] = per_launch_us(
            lambda: drv.cuLaunchKernel(fn.handle, 1, 1, 1, 32, 1, 1, 0, stream, packed, 0))
        results["torch a.add_(1) (reference)"] = per_launch_us(lambda: a.add_(1))
        torch.cuda.synchronize()
        print("\nlaunch overhead, host us per launch (median of 15 batches of 400):")
        for name, us in results.items():
            print(f"  {us:7.2f} us  {name}")

    @pytest.mark.parametrize("swizzle", [0, 128])
    def test_tma_roundtrip(self, torch, swizzle):
        cubin, _ = ptxas.assemble(TMA_PTX, "sm_90a")
        fn = rt.load_module(cubin).function("tma_roundtrip")
        rows, cols = 70, 100  # ragged: edge boxes are partly out of bounds
        src = torch.randn(rows, cols, device="cuda")
        dst = torch.zeros_like(src)
        dump = torch.zeros(16 * 32, device="cuda")
        kw = dict(dtype="f32", global_dims=(cols, rows), global_strides_bytes=(cols * 4,), box_dims=(32, 16),
                  swizzle=swizzle)
        t_src = rt.make_tma_descriptor(src, **kw)
        t_dst = rt.make_tma_descriptor(dst.data_ptr(), **kw)
        assert rt.make_tma_descriptor(src, **kw) is t_src  # cached
        assert len(t_src.bytes) == 128
        rt.launch(fn, (_cdiv(cols, 32), _cdiv(rows, 16)), 128, 0, None,
                  [("tensormap", t_src), ("tensormap", t_dst.cu), ("ptr", dump)])
        torch.cuda.synchronize()
        torch.testing.assert_close(dst, src, rtol=0, atol=0)
        tile = src[:16, :32].reshape(16, 8, 4)  # rows of 128 B = 8 chunks of 16 B
        raw = dump.reshape(16, 8, 4)
        if swizzle == 0:
            expect = tile
        else:  # SWIZZLE_128B: 16-byte chunk j of row r sits at chunk j ^ (r % 8)
            expect = torch.empty_like(tile)
            for r in range(16):
                for j in range(8):
                    expect[r, j ^ (r % 8)] = tile[r, j]
        torch.testing.assert_close(raw, expect, rtol=0, atol=0)

    def test_tma_descriptor_errors(self, torch):
        x = torch.zeros(64, 64, device="cuda")
        with pytest.raises(ValueError, match="16-byte aligned"):
            rt.make_tma_descriptor(x.data_ptr() + 4, "f32", (64, 64), (256,), (32, 32))
        with pytest.raises(rt.CudaError, match="cuTensorMapEncodeTiled"):  # 64 fp32 = 256 B > 128 B swizzle
            rt.make_tma_descriptor(x, "f32", (64, 64), (256,), (64, 8), swizzle=128)
