"""`SimTensorMap`: the simulator's stand-in for a CUtensorMap (TMA descriptor).

It mirrors `tilec.runtime.cuda.make_tma_descriptor`: dims, strides and box innermost first,
strides in bytes for dims 1..r-1, swizzle 0/32/64/128 bytes, OOB fill zero (or NaN).  The
tensor is a numpy array that TMA loads read and TMA stores write in place.

Shared-memory box layout: the box is dense in smem, innermost dimension contiguous; with a
swizzle, every 16-byte chunk of the box is moved by the address XOR of `memory.swizzle`
(computed from the absolute shared address, so the destination should be aligned to the
swizzle pattern: 1024 B for 128B swizzle).  The box's inner extent in bytes must equal the
swizzle span (what CUTLASS always uses; narrower boxes are not simulated).

Packed sub-byte data types (``packed_bits`` 4 / 6: ``CU_TENSOR_MAP_DATA_TYPE_16U4_ALIGN16B`` /
``16U6_ALIGN16B``, PTX ``.b4x16_p64`` / ``.b6x16_p32``, what tcgen05 kind::f8f6f4 reads fp4 /
fp6 through): the global tensor is packed (a uint8 array; element i of a row at bits
[b*i, b*i + b), little-endian), dims count elements, and a load expands every 16 elements of
the box to 16 bytes of shared memory: the 8 / 12 packed bytes, then 8 / 4 bytes of padding
that the hardware leaves uninitialised (written here as 0xFF, so whatever reads them shows
it).  The box's inner extent is a multiple of 16 elements (16 smem bytes each); elements
outside the tensor read as 0.  Stores of these types are not simulated.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_ELEM_BYTES = {"u8": 1, "uint8": 1, "i8": 1, "int8": 1, "u16": 2, "uint16": 2, "i16": 2, "int16": 2,
               "u32": 4, "uint32": 4, "i32": 4, "int32": 4, "u64": 8, "uint64": 8, "i64": 8, "int64": 8,
               "f16": 2, "float16": 2, "half": 2, "bf16": 2, "bfloat16": 2, "f32": 4, "float32": 4, "float": 4,
               "f64": 8, "float64": 8, "double": 8, "tf32": 4, "f32_ftz": 4, "tf32_ftz": 4,
               "float8_e4m3fn": 1, "float8_e5m2": 1, "float8_e8m0fnu": 1}
_NAN_BITS = {2: 0x7FFF, 4: 0x7FFFFFFF, 8: 0x7FF8000000000000}
#: packed sub-byte TMA data types -> bits per element (16 elements per 16 smem bytes)
_PACKED_BITS = {"16u4_align16b": 4, "b4x16_p64": 4, "16u6_align16b": 6, "b6x16_p32": 6}


@dataclass
class SimTensorMap:
    """A tiled TMA descriptor over ``array`` (C-contiguous, written in place by TMA stores).

    ``box``: the shared-memory box, innermost dimension first.  ``dims`` (elements) and
    ``strides`` (bytes, dims 1..r-1) default to the array's own shape and strides, reversed.
    ``elem_bytes`` defaults to ``array.itemsize`` (use 1 with a uint8 array of packed fp4 pairs).
    ``oob_fill``: "zero" or "nan" (CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA).
    """

    array: np.ndarray
    box: tuple
    swizzle: int = 0
    oob_fill: str = "zero"
    dims: tuple | None = None
    strides: tuple | None = None
    elem_bytes: int | None = None
    elem_strides: tuple | int = 1
    packed_bits: int = 0          # 4 / 6: 16U4_ALIGN16B / 16U6_ALIGN16B (the module docstring)

    def __post_init__(self):
        a = self.array
        if not isinstance(a, np.ndarray) or not a.flags.c_contiguous:
            raise ValueError("SimTensorMap.array must be a C-contiguous numpy array")
        pb = self.packed_bits
        if pb:
            if pb not in (4, 6) or a.dtype != np.uint8:
                raise ValueError(f"packed ALIGN16B tensor maps are 4- or 6-bit over uint8 data, got {pb} bits "
                                 f"over {a.dtype}")
            self.elem_bytes = 1       # in shared memory: 16 elements per 16 bytes
            if self.dims is None:
                self.dims = (a.shape[-1] * 8 // pb,) + tuple(int(d) for d in reversed(a.shape[:-1]))
            if self.strides is None:
                self.strides = tuple(int(x) for x in reversed(a.strides[:-1]))
        eb = self.elem_bytes = int(self.elem_bytes or a.itemsize)
        if self.dims is None:
            shape = a.shape
            if a.itemsize != eb:
                if (shape[-1] * a.itemsize) % eb:
                    raise ValueError("array's inner dimension is not a whole number of elements")
                shape = shape[:-1] + (shape[-1] * a.itemsize // eb,)
            self.dims = tuple(int(d) for d in reversed(shape))
        self.dims = tuple(int(d) for d in self.dims)
        r = len(self.dims)
        if self.strides is None:
            st, s = [], eb
            for d in self.dims[:-1]:
                s *= d
                st.append(s)
            self.strides = tuple(st)
        self.strides = tuple(int(s) for s in self.strides)
        if len(self.strides) == r:
            self.strides = self.strides[1:]
        self.box = tuple(int(b) for b in self.box)
        es = self.elem_strides
        self.elem_strides = (int(es),) * r if isinstance(es, int) else tuple(int(e) for e in es)
        if not 1 <= r <= 5 or len(self.box) != r or len(self.strides) != r - 1:
            raise ValueError(f"SimTensorMap rank {r}: need {r} box dims and {r - 1} strides, got box={self.box} "
                             f"strides={self.strides}")
        if any(not 1 <= b <= 256 for b in self.box):
            raise ValueError(f"TMA box dims must be in 1..256, got {self.box}")
        if any(s % 16 for s in self.strides):
            raise ValueError(f"TMA global strides must be multiples of 16 bytes, got {self.strides}")
        if (self.box[0] * eb) % 16:
            raise ValueError(f"TMA box inner extent must be a multiple of 16 bytes, got {self.box[0] * eb}")
        if self.swizzle not in (0, 32, 64, 128):
            raise ValueError(f"swizzle must be 0, 32, 64 or 128 bytes, got {self.swizzle}")
        if self.swizzle and self.box[0] * eb > self.swizzle:
            raise ValueError(f"box inner extent {self.box[0] * eb} B exceeds the {self.swizzle} B swizzle span")
        if any(e != 1 for e in self.elem_strides):
            raise ValueError("element strides other than 1 are not simulated")
        if self.oob_fill not in ("zero", "nan"):
            raise ValueError("oob_fill must be 'zero' or 'nan'")
        if pb:
            self._check_packed()
        row_bytes = -(-self.dims[0] * pb // 8) if pb else self.dims[0] * eb
        last = sum((d - 1) * s for d, s in zip(self.dims[1:], self.strides)) + row_bytes
        if last > a.nbytes:
            raise ValueError(f"tensor map dims {self.dims} / strides {self.strides} reach byte {last}, "
                             f"past the array's {a.nbytes} bytes")
        self.u8 = a.reshape(-1).view(np.uint8)

    def _check_packed(self) -> None:
        """`cuTensorMapEncodeTiled`'s extra rules for 16U4_ALIGN16B / 16U6_ALIGN16B (CUDA driver
        API, "Tensor Map Object Management"): globalDim[0] a multiple of 128, strides multiples
        of 32 bytes, boxDim[0] == 128, swizzle none or 128B, OOB fill zero.  (The 32-byte base
        alignment concerns the device address: the simulator's buffers are 256-byte aligned.)"""
        name = f"16U{self.packed_bits}_ALIGN16B"
        if self.dims[0] % 128:
            raise ValueError(f"{name}: globalDim[0] must be a multiple of 128, got {self.dims[0]}")
        if any(s % 32 for s in self.strides):
            raise ValueError(f"{name}: global strides must be multiples of 32 bytes, got {self.strides}")
        if self.box[0] != 128:
            raise ValueError(f"{name}: boxDim[0] must be 128, got {self.box[0]}")
        if self.swizzle not in (0, 128):
            raise ValueError(f"{name}: loads take swizzle NONE or 128B, got {self.swizzle}")
        if self.oob_fill != "zero":
            raise ValueError(f"{name}: NaN out-of-bounds fill is not allowed for packed types")

    @classmethod
    def from_cuda_args(cls, array, dtype, global_dims, global_strides_bytes, box_dims, swizzle=0,
                       elem_strides=1, *, oob_fill_nan: bool = False, **_ignored) -> "SimTensorMap":
        """Same arguments as `tilec.runtime.cuda.make_tma_descriptor`, with ``array`` as the pointer."""
        key = getattr(dtype, "name", None) or str(dtype)
        pb = _PACKED_BITS.get(key.lower().removeprefix("cu_tensor_map_data_type_"), 0)
        eb = dtype // 8 if isinstance(dtype, int) else (1 if pb else _ELEM_BYTES.get(key))
        if eb is None:
            raise ValueError(f"unknown TMA dtype {dtype!r}")
        gs = tuple(global_strides_bytes)
        if len(gs) == len(tuple(global_dims)):
            gs = gs[1:]
        return cls(array, tuple(box_dims), swizzle, "nan" if oob_fill_nan else "zero", tuple(global_dims),
                   gs, eb, elem_strides, pb)

    @property
    def box_bytes(self) -> int:
        """Bytes a load writes to shared memory (16 per 16 elements for the packed types)."""
        return int(np.prod(self.box)) * self.elem_bytes

    @property
    def tx_bytes(self) -> int:
        """The mbarrier transaction bytes of one box load: the box's bytes in the global format,
        i.e. `box_bytes` except for the packed types, whose 16 elements count 8 (16U4) / 12
        (16U6) bytes, what TMA reads (DeepGEMM's sm100 fp8 x fp4 GEMM expects half the unpacked
        smem size for its 16U4_ALIGN16B operand; CUTLASS counts sizeof_bits of the 4-bit type)."""
        if self.packed_bits:
            return int(np.prod(self.box)) * self.packed_bits // 8
        return self.box_bytes

    def box_elements(self, coords) -> tuple[np.ndarray, np.ndarray]:
        """(byte offset in the array, in-bounds) of every box element, in smem order (innermost fastest)."""
        r = len(self.dims)
        axes = [np.int64(c) + np.arange(b, dtype=np.int64) for c, b in zip(coords, self.box)]
        grids = np.meshgrid(*axes[::-1], indexing="ij")[::-1]          # grids[d]: coordinate along dim d
        valid = np.ones(grids[0].shape, bool)
        off = np.zeros(grids[0].shape, np.int64)
        for d in range(r):
            g = grids[d]
            valid &= (g >= 0) & (g < self.dims[d])
            off += g * (self.elem_bytes if d == 0 else self.strides[d - 1])
        return off.reshape(-1), valid.reshape(-1)

    def load_box(self, coords) -> np.ndarray:
        """The box's bytes (OOB elements filled), flattened in smem order."""
        if self.packed_bits:
            return self._load_packed(coords)
        off, valid = self.box_elements(coords)
        eb = self.elem_bytes
        out = np.zeros((len(off), eb), np.uint8)
        if valid.any():
            out[valid] = self.u8[off[valid][:, None] + np.arange(eb)]
        if self.oob_fill == "nan" and (~valid).any():
            nb = _NAN_BITS.get(eb)
            if nb is not None:
                out[~valid] = np.frombuffer(int(nb).to_bytes(eb, "little"), np.uint8)
        return out.reshape(-1)

    def _load_packed(self, coords) -> np.ndarray:
        """ALIGN16B load: the box's elements (codes gathered bit by bit from the packed rows),
        every 16 packed into their 16 smem bytes followed by 0xFF padding."""
        b, box = self.packed_bits, self.box
        rows = int(np.prod(box[1:])) if len(box) > 1 else 1
        row_off = np.zeros(rows, np.int64)
        row_ok = np.ones(rows, bool)
        if len(box) > 1:
            axes = [np.int64(c) + np.arange(n, dtype=np.int64) for c, n in zip(coords[1:], box[1:])]
            grids = np.meshgrid(*axes[::-1], indexing="ij")[::-1]
            for d, g in enumerate(grids):
                g = g.reshape(-1)
                row_ok &= (g >= 0) & (g < self.dims[d + 1])
                row_off += g * self.strides[d]
        e = np.int64(coords[0]) + np.arange(box[0], dtype=np.int64)
        ok = row_ok[:, None] & ((e >= 0) & (e < self.dims[0]))[None, :]
        codes = np.zeros((rows, box[0]), np.uint8)
        for j in range(b):
            bit = e * b + j
            idx = np.where(ok, row_off[:, None] + bit[None, :] // 8, 0)
            codes |= (((self.u8[idx] >> (bit % 8).astype(np.uint8)[None, :]) & 1) << np.uint8(j)) * ok
        bits = np.unpackbits(codes[..., None], axis=-1, bitorder="little")[..., :b]
        data = np.packbits(bits.reshape(rows, box[0] // 16, 16 * b), axis=-1, bitorder="little")
        out = np.full((rows, box[0] // 16, 16), 0xFF, np.uint8)
        out[:, :, :2 * b] = data
        return out.reshape(-1)

    def store_box(self, coords, data: np.ndarray) -> None:
        if self.packed_bits:
            raise ValueError("TMA stores of packed 16U4 / 16U6 data types are not simulated")
        off, valid = self.box_elements(coords)
        eb = self.elem_bytes
        rows = data.reshape(len(off), eb)
        if valid.any():
            self.u8[off[valid][:, None] + np.arange(eb)] = rows[valid]


class UnusedTensorMap(SimTensorMap):
    """A tensor-map argument the kernel must not read (the launch found the tensor unfit for
    TMA, `tilec.runtime.launch.tma_ready`, and the kernel tests the same and copies the data
    itself): any TMA through it is an error naming `reason`."""

    def __init__(self, reason: str):          # noqa: D107 - no dataclass validation: there is no tensor
        self.reason = reason

    def __repr__(self) -> str:
        return f"UnusedTensorMap({self.reason!r})"

    def _unused(self, *_a):
        raise ValueError(f"TMA through an unused tensor map: {self.reason}")

    def __getattr__(self, name):              # dims, strides, box, ...: there are none
        if name == "reason":
            raise AttributeError(name)
        self._unused()

    box_bytes = tx_bytes = dims = strides = box = swizzle = elem_bytes = packed_bits = property(_unused)
    box_elements = load_box = store_box = _unused
