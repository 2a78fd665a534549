"""The cached-launch fast path: one generated function per launch plan that checks the
arguments against the plan's signature and launches, in straight-line code.

`Launcher.__call__` (tilec.jit) first tries the fast function of the last plan it used.
The function returns False, without launching, as soon as an argument does not match
what the plan was built for; the caller then takes the general path (signature key,
plan dict, compile), so semantics are exactly those of `Kernel.launch_signature`:

* a ``ct.Constant`` argument: same type and equal value;
* an int scalar: an int on the same side of the 32-bit range; a float scalar: a float;
* a torch tensor: ``type is torch.Tensor``, same dtype, rank, contiguity, device ordinal
  (``get_device()`` is -1 for a host tensor, so a host tensor never matches a GPU plan),
  same 16-byte alignment bit (base pointer and row pitch) and the same static dims;
* a packed fp4 tensor (``tilec.fp4.FP4Tensor`` over a torch tensor): an FP4Tensor whose
  ``packed`` passes the tensor test above, with the rank, alignment bit and static dims of
  its logical ``shape`` (the launch packs ``packed.data_ptr()`` and the logical dims);
* a TMA tensor map of a contiguous tensor argument: its 128 bytes come from the launch's
  descriptor cache keyed by (pointer, shape, role) (`launch.tensor_map_getter`).

Per call it reads each tensor's ``dtype, shape, data_ptr(), is_contiguous(), get_device()``
once, packs pointers, dims and scalars into the launcher's argument buffer with one
``struct.pack_into`` and calls ``cuLaunchKernel`` (cuda.bindings) directly.  What the generated
source looks like for ``tiny_add(X, Y, Z)`` on grid (1,)::

    def fast(args):
        if len(args) != 3: return False
        a0, a1, a2 = args
        if type(a0) is not TENSOR or a0.dtype is not D0: return False
        s0 = a0.shape
        if len(s0) != 1 or a0.is_contiguous() is not True or a0.get_device() != 0: return False
        p0 = a0.data_ptr()
        if (not (p0 & 15)) is not True: return False
        ...  (a1, a2 alike)
        PACK(BUF, 16, p0, s0[0], p1, s1[0], p2, s2[0])
        LAUNCH()
        return True
"""

from __future__ import annotations

import struct

#: scalar launch kinds whose Python value packs as is (no conversion of `_scalar` needed)
_DIRECT_SCALARS = {("i32", "i32"), ("i64", "i64"), ("f32", "f32"), ("f64", "f64")}  # (kind, dtype name)


def build_fast_launch(kernel, args: tuple, gpu, value_args: tuple, grid: tuple,
                      pack_into, buf, offset: int, launch_tail) -> object | None:
    """The fast function of a plan (see the module docstring), or None when `args` has a
    kind the fast path does not cover (numpy arrays, `__cuda_array_interface__` objects,
    TMA descriptors of non-contiguous data...).  A `tilec.fp4.FP4Tensor` over a torch
    tensor is covered: its packed uint8 tensor is checked like a tensor argument (dtype,
    contiguity, device, base alignment), its logical `shape` gives the dims and the static
    dims, and the packed data's address is what gets packed.

    `gpu`: the artifact's PtxKernel (its `params` say what to pack); `value_args[k]`: the
    launch position of the k-th bound value; `pack_into(buf, offset, *values)` writes the
    argument buffer; `launch_tail()` launches with it."""
    from tilec.fp4 import FP4Tensor
    from tilec.jit import _torch_tensor_type

    ns: dict = {"PACK": pack_into, "BUF": buf, "LAUNCH": launch_tail, "STRUCT_ERROR": struct.error}
    n = len(args)
    names = [f"a{i}" for i in range(n)]
    src = [f"if len(args) != {n}: return False", f"{', '.join(names)}{',' if n == 1 else ''} = args"]
    static = {}
    for (i, ax) in kernel.static_dims:
        static.setdefault(i, []).append(ax)
    tensors = set()
    contiguous = {}          # contiguous tensor arguments -> element size (what a TMA map needs)
    for i, (p, a) in enumerate(zip(kernel.params, args)):
        t = type(a)
        if p.kind == "constant":
            ns[f"C{i}"], ns[f"CT{i}"] = a, t
            src.append(f"if type(a{i}) is not CT{i} or not (a{i} == C{i}): return False")
        elif t is int:
            small = -2**31 <= a < 2**31
            src.append(f"if type(a{i}) is not int or (-2147483648 <= a{i} < 2147483648) is not {small}: return False")
        elif t is float:
            src.append(f"if type(a{i}) is not float: return False")
        elif t is _torch_tensor_type(t):  # the device test below keeps host tensors off GPU plans
            ns["TENSOR"], ns[f"D{i}"] = t, a.dtype
            shape = a.shape
            aligned = a.data_ptr() % 16 == 0 and (len(shape) < 2 or shape[-1] * a.element_size() % 16 == 0)
            src += [f"if type(a{i}) is not TENSOR or a{i}.dtype is not D{i}: return False",
                    f"s{i} = a{i}.shape",
                    f"if len(s{i}) != {len(shape)} or a{i}.is_contiguous() is not {a.is_contiguous()} "
                    f"or a{i}.get_device() != {a.get_device()}: return False",
                    f"p{i} = a{i}.data_ptr()"]
            row = f" and not (s{i}[-1] * {a.element_size()}) & 15" if len(shape) >= 2 else ""
            src.append(f"if (not (p{i} & 15){row}) is not {aligned}: return False")
            for ax in sorted(static.get(i, ())):
                if ax < len(shape):
                    src.append(f"if s{i}[{ax}] != {shape[ax]}: return False")
            tensors.add(i)
            if a.is_contiguous():
                contiguous[i] = a.element_size()
        elif t is FP4Tensor and type(a.packed) is _torch_tensor_type(type(a.packed)):
            # packed fp4: the logical shape gives the dims, the packed uint8 tensor the pointer
            # (its contiguity and device are checked like a tensor's; alignment as `bind` sees it)
            k = a.packed
            ns["FP4"], ns["TENSOR"], ns[f"D{i}"] = FP4Tensor, type(k), k.dtype
            shape = a.shape
            aligned = k.data_ptr() % 16 == 0 and (len(shape) < 2 or shape[-1] % 16 == 0)
            src += [f"if type(a{i}) is not FP4: return False",
                    f"k{i} = a{i}.packed",
                    f"if type(k{i}) is not TENSOR or k{i}.dtype is not D{i}: return False",
                    f"s{i} = a{i}.shape",
                    f"if len(s{i}) != {len(shape)} or k{i}.is_contiguous() is not {k.is_contiguous()} "
                    f"or k{i}.get_device() != {k.get_device()}: return False",
                    f"p{i} = k{i}.data_ptr()"]
            row = f" and not s{i}[-1] & 15" if len(shape) >= 2 else ""
            src.append(f"if (not (p{i} & 15){row}) is not {aligned}: return False")
            for ax in sorted(static.get(i, ())):
                if ax < len(shape):
                    src.append(f"if s{i}[{ax}] != {shape[ax]}: return False")
            tensors.add(i)
            if k.is_contiguous():
                contiguous[i] = 1
        else:
            return None
    values = []
    for k, prm in enumerate(gpu.params):
        role = prm.role
        i = value_args[role[1]] if role[0] in ("tensor", "dim", "scalar", "tma") else None
        if role[0] == "tensor" and i in tensors:
            values.append(f"p{i}")
        elif role[0] == "tma" and i in tensors and contiguous.get(i):
            # TMA descriptor: built once per (pointer, shape), then a dict lookup per call
            from tilec.runtime.launch import tensor_map_getter

            ns[f"TMAP{k}"] = tensor_map_getter(role, contiguous[i])
            values.append(f"TMAP{k}(p{i}, s{i})")
        elif role[0] == "dim" and i in tensors:
            values.append(f"s{i}[{role[2]}]")
        elif role[0] == "scalar":
            if (prm.kind, role[2]) not in _DIRECT_SCALARS:
                return None
            values.append(f"a{i}")
        elif role[0] == "grid":
            values.append(str(grid[role[1]] if role[1] < len(grid) else 1))
        else:  # TMA maps of non-contiguous data and anything new: the general plan handles them
            return None
    src += ["try:", f"    PACK(BUF, {offset}, {', '.join(values)})",
            "except (OverflowError, STRUCT_ERROR):  # dims >= 2^32, out-of-range scalars: general path",
            "    return False", "LAUNCH()", "return True"]
    text = "def fast(args):\n" + "".join(f"    {line}\n" for line in src)
    exec(compile(text, f"<tilec fast launch of {kernel.name}>", "exec"), ns)
    fast = ns["fast"]
    fast.source = text
    return fast

