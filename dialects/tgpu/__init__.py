"""The `tgpu` dialect: GPU-level tile ops for sm_90a: shared-memory stage buffers, TMA copies
completing on mbarriers, and warpgroup MMAs (`wgmma`) accumulating in registers.

The IR stays at tile granularity: a buffer holds whole tiles (one per pipeline stage), a
copy moves a whole tile, a `tgpu.wgmma` is the whole BMxBNxBK product of two stage buffers.
The PTX lowering (`backends/ptx/lower_tgpu_memory.py`, `lower_wgmma.py`,
`lower_tgpu_attention.py`) splits tiles into TMA boxes, warpgroups and K16 instructions.
The passes `tile-promote-smem` and `tile-async-copy` produce these ops from the canonical
K loop (`acc = matmul(load(A), load(B), acc)`); `tile-attention-wgmma`
from the flash-attention loop (S = q k^T on `tgpu.wgmma {b_kmajor}`, P v on
`tgpu.wgmma_reg_a` with P in registers, masks as `tgpu.mask`).

Types:

* `!tgpu.smem<128x64xf16, swizzle = 128, stages = 4>`: `stages` buffers of one row-major tile
  in shared memory.  With a swizzle (bytes: 32, 64, 128) a tile is stored as column panels of
  `swizzle` bytes (64 f16 columns for 128), each panel its rows one after another, and the
  16-byte chunks of row r XOR-ed with r % 8: what TMA writes and wgmma reads.
* `!tgpu.mbarrier<4>`: one mbarrier per stage.
* `!tgpu.acc<128x128xf32>`: an accumulator tile held in wgmma fragment registers (warpgroup w
  holds rows 64w..64w+63); only tgpu ops read or write it.

```mlir
%a_s = tgpu.alloc_smem : !tgpu.smem<128x64xf16, swizzle = 128, stages = 4>
%full = tgpu.mbarrier_init {arrivals = 1 : i64} : !tgpu.mbarrier<4>
tgpu.elect {
  tgpu.mbarrier_arrive_expect_tx %full[%s] {bytes = 16384 : i64} : !tgpu.mbarrier<4>
  tgpu.tma_load %A[%r, %c] -> %a_s[%s], %full : !tile.tensor<?x?xf16>, !tgpu.smem<128x64xf16, swizzle = 128, stages = 4>, !tgpu.mbarrier<4>
}
tgpu.mbarrier_wait %full[%s], %phase : !tgpu.mbarrier<4>
```

The package, one family of ops per module (this module builds the `Tgpu` dialect and
re-exports every name):

* `types.py`: `!tgpu.smem`, `!tgpu.mbarrier`, `!tgpu.acc`.
* `memory.py`: shared-memory stage buffers, copies, TMA loads, mbarriers, `tgpu.elect`, `tgpu.stage`.
* `wgmma.py`: accumulator fragments, `tgpu.wgmma`, `tgpu.wgmma_reg_a`, fence / commit / wait.
* `attention.py`: `tgpu.mask` and `tgpu.turn` (flash attention).
* `cp_async.py`: the sm_80 section: cp.async stage buffers, `tgpu.mma_sync`, `!tgpu.mma_acc`.
"""

from __future__ import annotations

from xdsl.ir import Dialect

from tilec.dialects.tgpu.attention import TURN_KINDS, MaskOp, TurnOp
from tilec.dialects.tgpu.cp_async import (
    SM80_OPS,
    CpAsyncAllocOp,
    CpAsyncCommitOp,
    CpAsyncOp,
    CpAsyncWaitOp,
    MmaAccInitOp,
    MmaAccStoreOp,
    MmaAccToTileOp,
    MmaAccType,
    MmaSyncOp,
)
from tilec.dialects.tgpu.memory import (
    AllocSmemOp,
    ArriveExpectTxOp,
    CopyOp,
    ElectOp,
    MBarrierArriveOp,
    MBarrierInitOp,
    MBarrierWaitOp,
    StageOp,
    TmaLoadOp,
)
from tilec.dialects.tgpu.types import SWIZZLES, AccType, MBarrierType, SmemType
from tilec.dialects.tgpu.wgmma import (
    WGMMA_TYPES,
    FromFragmentOp,
    StoreFragmentOp,
    ToFragmentOp,
    WgmmaCommitOp,
    WgmmaFenceOp,
    WgmmaOp,
    WgmmaRegAOp,
    WgmmaWaitOp,
)

Tgpu = Dialect(
    "tgpu",
    [AllocSmemOp, CopyOp, MBarrierInitOp, ArriveExpectTxOp, TmaLoadOp, MBarrierWaitOp, MBarrierArriveOp,
     ElectOp, StageOp, ToFragmentOp, FromFragmentOp, StoreFragmentOp, WgmmaFenceOp, WgmmaCommitOp,
     WgmmaWaitOp, WgmmaOp, WgmmaRegAOp, MaskOp, TurnOp, *SM80_OPS],
    [SmemType, MBarrierType, AccType, MmaAccType],
)

__all__ = [
    "SM80_OPS", "SWIZZLES", "TURN_KINDS", "WGMMA_TYPES", "AccType", "AllocSmemOp", "ArriveExpectTxOp", "CopyOp",
    "CpAsyncAllocOp", "CpAsyncCommitOp", "CpAsyncOp", "CpAsyncWaitOp", "ElectOp", "FromFragmentOp",
    "MBarrierArriveOp", "MBarrierInitOp", "MBarrierType", "MBarrierWaitOp", "MaskOp", "MmaAccInitOp",
    "MmaAccStoreOp", "MmaAccToTileOp", "MmaAccType", "MmaSyncOp", "SmemType", "StageOp", "StoreFragmentOp",
    "TmaLoadOp", "ToFragmentOp", "Tgpu", "TurnOp", "WgmmaCommitOp", "WgmmaFenceOp", "WgmmaOp", "WgmmaRegAOp",
    "WgmmaWaitOp",
]
