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


# ----------------------------------------------------------------------------- the fast path
# GPU plans launch through a generated function (tilec.runtime.fast_launch).  Without a GPU these
# tests drive it with host torch tensors, a fake driver launcher and `is_cuda` patched to True:
# the guard must accept exactly the arguments whose launch signature equals the plan's.


@ct.kernel
def tiny_add(X: ct.Tensor, Y: ct.Tensor, Z: ct.Tensor, s: float, B: ct.Constant[int]):
    i = ct.tile_idx(0)
    x = ct.load_tile(X, offset=[i * B], size=[B])
    ct.store_tile(Z, offset=[i * B], tile=x + ct.load_tile(Y, offset=[i * B], size=[B]) * s)


class _FakeDriverLauncher:
    """Stands in for tilec.runtime.cuda.Launcher: records what each launch packed."""

    def __init__(self):
        self.packed, self.launches, self.calls = None, [], []

    def fast_parts(self, dims):
        def pack_into(buf, offset, *values):
            self.packed = values

        return pack_into, None, 0, lambda: self.launches.append((dims, self.packed))

    def __call__(self, dims, *values):  # the general plan's launch
        self.calls.append((dims, values))


def _gpu_plan(monkeypatch, kernel, grid, args):
    """Compile `kernel` for sm_90a and install the plan a GPU launch of `args` would leave."""
    import pytest

    torch = pytest.importorskip("torch")
    import tilec.runtime.cuda as cuda
    import tilec.runtime.launch as launch

    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True), raising=False)
    fake = _FakeDriverLauncher()
    monkeypatch.setattr(launch, "_launcher", lambda artifact, device: fake)
    monkeypatch.setattr(cuda, "current_device", lambda: {"ordinal": 0})
    host = tuple(a.numpy() if isinstance(a, torch.Tensor) else a for a in args)
    artifact, _ = kernel.compile_for(host, "sm_90a")
    launcher = kernel[grid]
    launcher._fast = None                    # (the Launcher of this grid is shared by the tests)
    launcher._remember_plan(args, artifact, "sm_90a")
    assert launcher._fast is None            # generated on the plan's first reuse
    launcher(*args)                          # the plan-dict path (fake.calls), which builds it
    assert len(fake.calls) == 1 and launcher._fast is not None
    fake.calls.clear()
    return launcher, fake, torch


def test_fast_path_packs_pointers_dims_and_scalars(monkeypatch):
    tiny_add._plans.clear()
    torch_args = __import__("pytest").importorskip("torch")
    x, y, z = (torch_args.zeros(256) for _ in range(3))
    launcher, fake, torch = _gpu_plan(monkeypatch, tiny_add, (2,), (x, y, z, 0.5, 128))
    assert launcher._fast is not None and "def fast" in launcher._fast[3].source
    x2, y2, z2 = (torch.zeros(512) for _ in range(3))          # same signature, other sizes/pointers
    launcher(x2, y2, z2, -3.0, 128)
    (dims, packed), = fake.launches
    assert dims == (2, 1, 1)
    gpu = next(iter(tiny_add._cache.values())).gpu
    expect = {("tensor", 0): x2.data_ptr(), ("dim", 0, 0): 512, ("tensor", 1): y2.data_ptr(),
              ("dim", 1, 0): 512, ("tensor", 2): z2.data_ptr(), ("dim", 2, 0): 512}
    for p, v in zip(gpu.params, packed):
        assert v == (expect[p.role] if p.role[0] != "scalar" else -3.0), p
    assert not fake.calls                                       # the general plan was not needed


def test_fast_path_falls_back_on_any_signature_change(monkeypatch):
    """Each change leaves the generated function (returns False) for the general path; a
    different dtype, rank, contiguity, alignment, constant or scalar width never launches fast."""
    import pytest

    tiny_add._plans.clear()
    torch = pytest.importorskip("torch")
    x, y, z = (torch.zeros(256) for _ in range(3))
    launcher, fake, _ = _gpu_plan(monkeypatch, tiny_add, (2,), (x, y, z, 0.5, 128))
    fast = launcher._fast[3]
    sig = tiny_add.launch_signature
    base = (x, y, z, 0.5, 128)
    variants = [
        (x.clone(), y, z, 2.0, 128),                            # same signature
        (x.half(), y, z, 0.5, 128),                             # dtype
        (x.reshape(2, 128), y, z, 0.5, 128),                    # rank
        (torch.zeros(512)[::2], y, z, 0.5, 128),                # contiguity
        (torch.zeros(257)[1:], y, z, 0.5, 128),                 # 16-byte alignment of the base
        (x, y, z, 0.5, 64),                                     # constant value
        (x, y, z, 0.5, True),                                   # constant type (True == 1)
        (x, y, z, 1, 128),                                      # scalar kind
        (x.numpy(), y, z, 0.5, 128),                            # a host array
        (x, y, z, 0.5),                                         # arity
    ]
    for args in variants:
        same = len(args) == len(base) and sig(args) == sig(base)
        assert fast(args) is same, args
    assert len(fake.launches) == 1


def test_fast_path_checks_static_dims_and_goes_stale_with_the_plans(monkeypatch):
    import pytest

    torch = pytest.importorskip("torch")
    x, y, z = (torch.zeros(256) for _ in range(3))
    tiny_add._plans.clear()
    launcher, fake, _ = _gpu_plan(monkeypatch, tiny_add, (2,), (x, y, z, 0.5, 128))
    entry = launcher._fast
    tiny_add._plans.clear()                                     # e.g. a static dim was learnt
    assert entry[1].generation != entry[2]                      # Launcher.__call__ skips it now
    monkeypatch.setattr(tiny_add, "static_dims", {(0, 0)})
    launcher._remember_plan((x, y, z, 0.5, 128), next(iter(tiny_add._cache.values())), "sm_90a")
    launcher(x, y, z, 0.5, 128)
    fast = launcher._fast[3]
    assert "s0[0] != 256" in fast.source
    assert fast((x, y, z, 0.5, 128)) and not fast((torch.zeros(512), y, z, 0.5, 128))
    monkeypatch.setattr(tiny_add, "static_dims", set())
    tiny_add._plans.clear()


def test_fast_path_respects_tilec_target(monkeypatch):
    import pytest

    torch = pytest.importorskip("torch")
    x, y, z = (torch.zeros(256) for _ in range(3))
    tiny_add._plans.clear()
    launcher, fake, _ = _gpu_plan(monkeypatch, tiny_add, (2,), (x, y, z, 0.5, 128))
    from tilec.jit import _target_token

    assert launcher._fast[0] == _target_token()
    monkeypatch.setenv("TILEC_TARGET", "sm_80")
    assert _target_token() != launcher._fast[0]                 # a changed target skips the fast entry
    tiny_add._plans.clear()


def test_launch_keywords_reuse_a_launcher_per_option_set(monkeypatch):
    """`k[grid](..., num_stages=3)` goes through a cached Launcher of (grid, options), so a
    repeated launch with the same keywords takes that Launcher's plan (and fast path)."""
    axpy._plans.clear()
    launcher = axpy[(4,)]
    x = np.arange(128, dtype=np.float32)
    for stages in (2, 3, 2):
        y = np.ones(128, np.float32)
        launcher(x, y, 2.0, 32, num_stages=stages)
        np.testing.assert_allclose(y, 1.0 + 2.0 * x)
    assert sorted(o.options.num_stages for o in launcher._by_options.values()) == [2, 3]
    assert {k[1].num_stages for k in axpy._plans} == {2, 3}            # one plan per option set
    assert launcher._with_options({"B": 1}) is None                      # a kernel parameter: not an option


# ----------------------------------------------------------------------------- packed fp4 arguments
# An `FP4Tensor` over a torch tensor is first-class on the fast path: keyed by its logical shape
# (rank, static dims, alignment), device and contiguity; the launch packs the packed data's address.


@ct.kernel
def fp4_widen(Q: ct.Tensor, Y: ct.Tensor, B: ct.Constant[int]):
    i = ct.tile_idx(0)
    q = ct.load_tile(Q, offset=[0, i * B], size=[2, B])
    ct.store_tile(Y, offset=[0, i * B], tile=ct.dequantize(q, ct.full([2, B // 32], 1.0, ct.float8_e8m0fnu)))


def _fp4(torch, rows, n, offset=0):
    """An FP4Tensor [rows, n] over a torch uint8 tensor whose data starts `offset` bytes into its storage."""
    packed = torch.zeros(rows * (n // 2) + offset, dtype=torch.uint8)[offset:].view(rows, n // 2)
    return ct.fp4_tensor(packed, (rows, n))


def _fp4_gpu_plan(monkeypatch, args, grid=(2,)):
    import pytest

    torch = pytest.importorskip("torch")
    import tilec.runtime.cuda as cuda
    import tilec.runtime.launch as launch

    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True), raising=False)
    fake = _FakeDriverLauncher()
    monkeypatch.setattr(launch, "_launcher", lambda artifact, device: fake)
    monkeypatch.setattr(cuda, "current_device", lambda: {"ordinal": 0})
    host = tuple(ct.fp4_tensor(a.packed.numpy(), a.shape) if hasattr(a, "packed")
                 else a.numpy() if isinstance(a, torch.Tensor) else a for a in args)
    artifact, _ = fp4_widen.compile_for(host, "sm_90a")
    launcher = fp4_widen[grid]
    launcher._fast = None
    launcher._remember_plan(args, artifact, "sm_90a")
    launcher(*args)                          # the plan-dict path (the general plan), which builds the fast one
    assert len(fake.calls) == 1 and launcher._fast is not None
    return launcher, fake, torch, artifact


def test_fp4_tensor_enters_the_launch_signature(monkeypatch):
    import pytest

    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True), raising=False)
    y = torch.zeros(2, 64)
    s = fp4_widen.launch_signature
    base = (_fp4(torch, 2, 64), y, 32)
    assert s(base) is not None
    assert s(base) == s((_fp4(torch, 2, 64), y, 32)) == s((_fp4(torch, 2, 128), y, 32))   # dims are dynamic
    assert s(base) != s((_fp4(torch, 2, 64, offset=8), y, 32))          # base address not 16-byte aligned
    assert s(base) != s((_fp4(torch, 2, 40), y, 32))                    # row pitch (logical n) not a multiple of 16
    assert s(base) != s((ct.fp4_tensor(torch.zeros(64, dtype=torch.uint8), (128,)), y, 32))   # rank
    assert s(base) != s((y, y, 32))                                     # a plain tensor is another kind
    assert s((ct.fp4_tensor(np.zeros((2, 32), np.uint8), (2, 64)), y, 32)) is None   # host fp4: the full path


def test_fast_path_packs_the_fp4_data_pointer_and_logical_dims(monkeypatch):
    fp4_widen._plans.clear()
    import pytest

    torch = pytest.importorskip("torch")
    q, y = _fp4(torch, 2, 64), torch.zeros(2, 64)
    launcher, fake, torch, artifact = _fp4_gpu_plan(monkeypatch, (q, y, 32))
    (dims, general), = fake.calls
    fast = launcher._fast[3]
    assert "a0.packed" in fast.source
    q2, y2 = _fp4(torch, 2, 256), torch.zeros(2, 256)                 # same signature, other pointers and sizes
    launcher(q2, y2, 32)
    (dims, packed), = fake.launches
    assert len(fake.calls) == 1                                         # the fast function launched it
    expect = {("tensor", 0): q2.packed.data_ptr(), ("dim", 0, 0): 2, ("dim", 0, 1): 256,
              ("tensor", 1): y2.data_ptr(), ("dim", 1, 0): 2, ("dim", 1, 1): 256}
    for p, v in zip(artifact.gpu.params, packed):
        if p.role in expect:
            assert v == expect[p.role], p
    # the general plan packed the same things for the first launch (its FP4 pointer is the packed one)
    for p, v in zip(artifact.gpu.params, general):
        if p.role == ("tensor", 0):
            assert v == q.packed.data_ptr()
    variants = [
        ((_fp4(torch, 2, 64), y, 32), True),
        ((_fp4(torch, 2, 64, offset=8), y, 32), False),                # alignment
        ((ct.fp4_tensor(torch.zeros(2, 64, dtype=torch.uint8)[:, ::2], (2, 64)), y, 32), False),   # contiguity
        ((ct.fp4_tensor(torch.zeros(2, 32, dtype=torch.uint8).numpy(), (2, 64)), y, 32), False),  # host data
        ((q.packed, y, 32), False),                                     # the bare packed bytes
        ((q, y, 16), False),                                            # constant
    ]
    for args, ok in variants:
        assert fast(args) is ok, args
    fp4_widen._plans.clear()


def test_gpu_fp4_tensor_over_non_contiguous_bytes_is_refused(monkeypatch):
    """An FP4Tensor over a strided GPU uint8 view: the kernel reads contiguous packed rows, so
    the launch must refuse it (LaunchError), not read the wrong bytes."""
    import pytest

    torch = pytest.importorskip("torch")
    import tilec.runtime.cuda as cuda
    import tilec.runtime.launch as launch

    fake = _FakeDriverLauncher()
    monkeypatch.setattr(launch, "is_device_array",
                        lambda a: isinstance(a, torch.Tensor) or isinstance(getattr(a, "packed", None), torch.Tensor))
    monkeypatch.setattr(launch, "_launcher", lambda artifact, device: fake)
    monkeypatch.setattr(cuda, "current_device", lambda: {"ordinal": 0, "cc": (9, 0)})
    strided = torch.zeros(2, 64, dtype=torch.uint8)[:, ::2]          # [2, 32] bytes, row pitch 64
    assert not strided.is_contiguous()
    q, y = ct.fp4_tensor(strided, (2, 64)), torch.zeros(2, 64)
    with pytest.raises(ct.LaunchError, match="contiguous"):
        fp4_widen[(2,)](q, y, 32)
    assert not fake.calls and not fake.launches
    fp4_widen._plans.clear()


class _PackingFakeLauncher(_FakeDriverLauncher):
    """Packs a dim of 2^32 like `tilec.runtime.cuda.PackedArgs` does (dims are u32): struct.error."""

    def _check(self, values):
        import struct

        if 2**32 in values:
            raise struct.error("'I' format requires 0 <= number <= 4294967295")

    def fast_parts(self, dims):
        pack, buf, off, launch = super().fast_parts(dims)
        return (lambda b, o, *values: (self._check(values), pack(b, o, *values))), buf, off, launch

    def __call__(self, dims, *values):
        self._check(values)
        super().__call__(dims, *values)


def test_a_dim_past_32_bits_on_a_cached_plan_is_a_launch_error(monkeypatch):
    """After a plan exists for a signature, a launch of that signature with a dim >= 2^32 must
    give the LaunchError the first launch gives ("does not fit 32 bits"), not a raw struct.error
    from packing the argument buffer."""
    import pytest

    torch = pytest.importorskip("torch")
    import tilec.runtime.cuda as cuda
    import tilec.runtime.launch as launch

    tiny_add._plans.clear()
    fake = _PackingFakeLauncher()
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True), raising=False)
    monkeypatch.setattr(launch, "is_device_array", lambda a: isinstance(a, torch.Tensor))
    monkeypatch.setattr(launch, "_launcher", lambda artifact, device: fake)
    monkeypatch.setattr(cuda, "current_device", lambda: {"ordinal": 0, "cc": (9, 0)})
    x, y, z = (torch.zeros(256) for _ in range(3))
    artifact, _ = tiny_add.compile_for((x.numpy(), y.numpy(), z.numpy(), 0.5, 128), "sm_90a")
    launcher = tiny_add[(2,)]
    launcher._fast = None
    launcher._remember_plan((x, y, z, 0.5, 128), artifact, "sm_90a")
    launcher(x, y, z, 0.5, 128)                      # the plan, which builds the fast function
    launcher(x, y, z, 0.5, 128)                      # the fast function
    assert len(fake.calls) == 1 and len(fake.launches) == 1
    big, ym, zm = (torch.empty(n, device="meta") for n in (2**32, 256, 256))   # no memory; same signature
    assert tiny_add.launch_signature((big, ym, zm, 0.5, 128)) == tiny_add.launch_signature((x, y, z, 0.5, 128))
    with pytest.raises(ct.LaunchError, match="32 bits"):
        launcher(big, ym, zm, 0.5, 128)
    assert len(fake.calls) == 1 and len(fake.launches) == 1
    tiny_add._plans.clear()


def test_an_error_on_a_cached_plan_surfaces_as_itself(monkeypatch):
    """A LaunchError raised by a cached plan (here: the CPU interpreter on the second launch of a
    signature) reaches the caller as that LaunchError, not as an UnboundLocalError of the launch code."""
    import pytest

    import tilec.backends.cpu.interpreter as interp

    real, calls = interp.run_kernel, []

    def run_kernel(*a, **k):
        calls.append(1)
        if len(calls) > 1:
            raise ct.LaunchError("boom from the plan")
        return real(*a, **k)

    monkeypatch.setattr(interp, "run_kernel", run_kernel)
    axpy._plans.clear()
    x, y = np.arange(64, dtype=np.float32), np.ones(64, np.float32)
    axpy[(2,)](x, y, 2.0, 32)                      # compiles, runs, keeps a plan
    assert len(axpy._plans) == 1
    with pytest.raises(ct.LaunchError, match="boom from the plan"):
        axpy[(2,)](x, y, 2.0, 32)                  # the plan
    axpy._plans.clear()
