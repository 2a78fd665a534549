"""Simulated state spaces: global (numpy buffers, written in place), shared (per CTA, with a
race detector), local (per thread) and the generic address windows that join them.

Generic addresses: global buffers live at ``GLOBAL_BASE`` and above (``cvta.to.global`` is the
identity); shared, local, param and const space appear in windows of 2^40 bytes
(``cvta.shared`` adds ``SHARED_WINDOW`` to a shared::cta offset, and so on).

Shared-memory race detection: every byte remembers the thread that last wrote it, the write's
"clock" (one tick per store instruction) and its PTX line.  A thread may read a byte written
by another thread only if a synchronisation made that write visible: a ``bar.sync`` both took
part in (``cta_sync``), a ``bar.warp.sync`` for a writer in its own warp (``warp_sync``), or a
completed ``mbarrier`` phase it waited on.  Async-proxy writes (TMA, bulk copies) need an
mbarrier wait (or a later bar.sync); bytes with an async copy still in flight (``pending``)
may not be touched at all.  Write-after-read races are caught against the byte's last reader
(one reader remembered per byte, so an earlier unsynchronised reader can be missed).
"""

from __future__ import annotations

import numpy as np

SHARED_WINDOW = 1 << 40
LOCAL_WINDOW = 2 << 40
PARAM_WINDOW = 3 << 40
CONST_WINDOW = 4 << 40
WINDOW_SIZE = 1 << 40
GLOBAL_BASE = 1 << 44
ASYNC_WRITER = -2          # wthread of bytes written by the async proxy (TMA, bulk copy)


def byte_index(off: np.ndarray, size: int) -> np.ndarray:
    return off.astype(np.int64)[:, None] + np.arange(size, dtype=np.int64)[None, :]


class GlobalMemory:
    """Global buffers (numpy arrays viewed as bytes), each at a 256-byte aligned base address,
    separated by at least 4 KiB so that running off one buffer never lands in the next."""

    def __init__(self):
        self.bases: list[int] = []
        self.ends: list[int] = []
        self.bufs: list[np.ndarray] = []
        self.names: list[str] = []
        self._next = GLOBAL_BASE
        self._np_bases = np.zeros(0, np.uint64)

    def add(self, arr: np.ndarray, name: str) -> int:
        if not arr.flags.c_contiguous:
            raise ValueError(f"global buffer {name} must be C-contiguous (it is written in place)")
        u8 = arr.reshape(-1).view(np.uint8)
        base = self._next
        self.bases.append(base)
        self.ends.append(base + u8.size)
        self.bufs.append(u8)
        self.names.append(name)
        self._next = (base + u8.size + 4096 + 255) & ~255
        self._np_bases = np.array(self.bases, np.uint64)
        return base

    def describe(self, addr: int) -> str:
        for b, e, n in zip(self.bases, self.ends, self.names):
            if b - 4096 <= addr < e + 4096:
                return f"{n} [{b:#x}, {e:#x}) ({e - b} bytes): offset {addr - b:+d}"
        return "no global buffer"

    def locate(self, addr: np.ndarray, size: int, err) -> tuple[np.ndarray, np.ndarray]:
        """(buffer index, byte offset) per address; ``err(msg, k)`` for an access out of bounds."""
        addr = addr.astype(np.uint64)
        if not self.bases:
            err(f"global access to {int(addr[0]):#x} but no global buffers exist", 0)
        bi = np.searchsorted(self._np_bases, addr, side="right").astype(np.int64) - 1
        ok = bi >= 0
        bic = np.maximum(bi, 0)
        ends = np.array(self.ends, np.uint64)[bic]
        ok &= addr + np.uint64(size) <= ends
        if not ok.all():
            k = int(np.argmin(ok))
            a = int(addr[k])
            err(f"out-of-bounds global access of {size} bytes at {a:#x} ({self.describe(a)})", k)
        off = (addr - self._np_bases[bic]).astype(np.int64)
        return bic, off

    def read(self, addr: np.ndarray, size: int, err) -> np.ndarray:
        bi, off = self.locate(addr, size, err)
        out = np.empty((len(addr), size), np.uint8)
        for b in np.unique(bi):
            sel = bi == b
            out[sel] = self.bufs[b][byte_index(off[sel], size)]
        return out

    def write(self, addr: np.ndarray, data: np.ndarray, err) -> None:
        size = data.shape[1]
        bi, off = self.locate(addr, size, err)
        for b in np.unique(bi):
            sel = bi == b
            self.bufs[b][byte_index(off[sel], size)] = data[sel]


class SharedMemory:
    """One CTA's shared memory (poisoned with 0xFF: uninitialised f32/f16 read as NaN) plus the
    race-detector state described in the module docstring."""

    def __init__(self, size: int, nthreads: int, warp_of: np.ndarray):
        self.size = size
        self.data = np.full(size, 0xFF, np.uint8)
        self.wthread = np.full(size, -1, np.int32)
        self.wclock = np.zeros(size, np.int64)
        self.wline = np.zeros(size, np.int32)
        self.rthread = np.full(size, -1, np.int32)     # last thread that read the byte (ld.shared)
        self.rclock = np.zeros(size, np.int64)
        self.rline = np.zeros(size, np.int32)
        self.pending = np.zeros(size, np.int32)
        self.pending_line = np.zeros(size, np.int32)
        self.cta_sync = np.zeros(nthreads, np.int64)
        self.warp_sync = np.zeros(nthreads, np.int64)
        self.proxy_fence = np.zeros(nthreads, np.int64)
        self.warp_of = np.concatenate([warp_of, [-1]]).astype(np.int64)   # index -1 -> async writer
        self.clock = 1

    def check_bounds(self, off: np.ndarray, size: int, err) -> None:
        bad = (off < 0) | (off + size > self.size)
        if bad.any():
            k = int(np.argmax(bad))
            err(f"out-of-bounds shared access of {size} bytes at offset {int(off[k]):#x} "
                f"(CTA shared memory is {self.size} bytes)", k)

    def read(self, off: np.ndarray, size: int, tids: np.ndarray, err, race: bool = True, line: int = 0) -> np.ndarray:
        off = off.astype(np.int64)
        self.check_bounds(off, size, err)
        idx = byte_index(off, size)
        pend = self.pending[idx]
        if pend.any():
            k, j = np.argwhere(pend > 0)[0]
            err(f"reads shared memory at {int(idx[k, j]):#x} while an async copy into it (issued at line "
                f"{self.pending_line[idx[k, j]]}) is still in flight: wait for it first "
                f"(cp.async.wait_group / mbarrier wait)", int(k))
        if race:
            self._race(idx, tids, err)
            self.clock += 1
            self.rthread[idx] = tids[:, None]
            self.rclock[idx] = self.clock
            self.rline[idx] = line
        return self.data[idx]

    def _war(self, idx: np.ndarray, tids: np.ndarray, err) -> None:
        """A write of bytes that another thread read with no synchronisation since."""
        r = self.rthread[idx]
        t = tids.astype(np.int64)[:, None]
        other = (r >= 0) & (r != t)
        if not other.any():
            return
        c = self.rclock[idx]
        seen = c <= self.cta_sync[t]
        seen |= (self.warp_of[np.maximum(r, 0)] == self.warp_of[t]) & (c <= self.warp_sync[t])
        bad = other & ~seen
        if bad.any():
            k, j = np.argwhere(bad)[0]
            err(f"shared-memory race: writes byte {int(idx[k, j]):#x} that thread {int(r[k, j])} read at line "
                f"{int(self.rline[idx[k, j]])} with no bar.sync (or mbarrier wait) in between "
                f"(write after read)", int(k))

    def _race(self, idx: np.ndarray, tids: np.ndarray, err, reader: str = "") -> None:
        w = self.wthread[idx]
        t = tids.astype(np.int64)[:, None]
        other = (w != -1) & (w != t)
        if not other.any():
            return
        c = self.wclock[idx]
        seen = c <= self.cta_sync[t]
        same_warp = self.warp_of[np.where(w >= 0, w, -1)] == self.warp_of[t]
        seen |= same_warp & (c <= self.warp_sync[t])
        bad = other & ~seen
        if bad.any():
            k, j = np.argwhere(bad)[0]
            who = "the async proxy (TMA / bulk copy)" if w[k, j] == ASYNC_WRITER else f"thread {int(w[k, j])}"
            err(f"shared-memory race: {reader}reads byte {int(idx[k, j]):#x} written by {who} at line "
                f"{int(self.wline[idx[k, j]])} with no bar.sync (or mbarrier wait) in between", int(k))

    def write(self, off: np.ndarray, data: np.ndarray, tids, err, line: int) -> None:
        """``tids``: the writing thread per row, or ASYNC_WRITER for the async proxy."""
        off = off.astype(np.int64)
        size = data.shape[1]
        self.check_bounds(off, size, err)
        idx = byte_index(off, size)
        if isinstance(tids, np.ndarray):
            pend = self.pending[idx]
            if pend.any():
                k, j = np.argwhere(pend > 0)[0]
                err(f"writes shared memory at {int(idx[k, j]):#x} while an async copy into it (issued at "
                    f"line {self.pending_line[idx[k, j]]}) is still in flight", int(k))
            self._war(idx, tids, err)
        self.clock += 1
        self.data[idx] = data
        self.wthread[idx] = tids if not isinstance(tids, np.ndarray) else tids[:, None]
        self.wclock[idx] = self.clock
        self.wline[idx] = line

    def async_read_check(self, idx: np.ndarray, issuer: int, err, what: str) -> None:
        """An async-proxy read (TMA store, wgmma / tcgen05 operands) of bytes ``idx`` issued by
        thread ``issuer``: in-flight copies are an error, and generic-proxy writes by threads must
        be made visible (bar.sync) and fenced (fence.proxy.async) first."""
        flat = idx.reshape(-1)
        if self.pending[flat].any():
            j = int(np.argmax(self.pending[flat] > 0))
            err(f"{what} reads shared memory at {int(flat[j]):#x} while an async copy into it (issued at "
                f"line {self.pending_line[flat[j]]}) is still in flight", 0)
        w = self.wthread[flat]
        thr = w >= 0
        if not thr.any():
            return
        c = self.wclock[flat]
        unsynced = thr & (w != issuer) & (c > self.cta_sync[issuer])
        unsynced &= ~((self.warp_of[np.maximum(w, 0)] == self.warp_of[issuer]) & (c <= self.warp_sync[issuer]))
        if unsynced.any():
            j = int(np.argmax(unsynced))
            err(f"{what} reads shared memory at {int(flat[j]):#x} written by thread {int(w[j])} (line "
                f"{int(self.wline[flat[j]])}) with no bar.sync in between", 0)
        unfenced = thr & (c > self.proxy_fence[np.maximum(w, 0)])
        if unfenced.any():
            j = int(np.argmax(unfenced))
            err(f"{what} reads shared memory at {int(flat[j]):#x} written through the generic proxy by "
                f"thread {int(w[j])} (line {int(self.wline[flat[j]])}) without a fence.proxy.async after the write", 0)

    def async_write(self, off: int, data: np.ndarray, line: int) -> None:
        idx = np.arange(off, off + data.size, dtype=np.int64)
        self.clock += 1
        self.data[idx] = data.reshape(-1)
        self.wthread[idx] = ASYNC_WRITER
        self.wclock[idx] = self.clock
        self.wline[idx] = line

    def add_pending(self, idx: np.ndarray, line: int, delta: int = 1) -> None:
        np.add.at(self.pending, idx.reshape(-1), delta)
        if delta > 0:
            self.pending_line[idx.reshape(-1)] = line


def swizzle(addr: np.ndarray, span: int) -> np.ndarray:
    """The 16-byte-chunk XOR swizzle of TMA / wgmma / tcgen05 for a ``span`` of 32, 64 or 128
    bytes (CuTe Swizzle<1|2|3, 4, 3>): address bits [4, 4+b) ^= bits [7, 7+b)."""
    if span == 0:
        return addr
    b = {32: 1, 64: 2, 128: 3}[span]
    mask = (1 << b) - 1
    return addr ^ (((addr >> 7) & mask) << 4)
