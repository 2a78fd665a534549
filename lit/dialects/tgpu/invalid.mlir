// RUN: tilec-opt %s --split-input-file --verify-diagnostics --parsing-diagnostics | filecheck %s

/// One case per verifier error of the sm_90a ops in dialects/tgpu/.

/// SmemType.verify: a 128B-swizzled row must be whole 128-byte panels.
func.func @smem_row_not_a_panel(%x: !tgpu.smem<64x32xf16, swizzle = 128, stages = 2>) {
  func.return
}
// CHECK: a 128B-swizzled tile's rows (32 elements) must be whole 128-byte panels

// -----

/// TmaLoadOp.verify_: TMA is issued by one thread, inside tgpu.elect.
func.func @tma_outside_elect(%A: !tile.tensor<?x?xf16>, %r: i32, %s: i32) {
  %a_smem = tgpu.alloc_smem : !tgpu.smem<64x64xf16, swizzle = 128, stages = 2>
  %full = tgpu.mbarrier_init {arrivals = 1 : i64} : !tgpu.mbarrier<2>
  tgpu.tma_load %A[%r, %r] -> %a_smem[%s], %full : !tile.tensor<?x?xf16>, !tgpu.smem<64x64xf16, swizzle = 128, stages = 2>, !tgpu.mbarrier<2>
  func.return
}
// CHECK: error: 'tgpu.tma_load' op 'tgpu.tma_load' is issued by one thread: it must sit inside a 'tgpu.elect'

// -----

/// TmaLoadOp.verify_: one barrier per buffer stage.
func.func @tma_stage_count(%A: !tile.tensor<?x?xf16>, %r: i32, %s: i32) {
  %a_smem = tgpu.alloc_smem : !tgpu.smem<64x64xf16, swizzle = 128, stages = 2>
  %full = tgpu.mbarrier_init {arrivals = 1 : i64} : !tgpu.mbarrier<3>
  tgpu.elect {
    tgpu.tma_load %A[%r, %r] -> %a_smem[%s], %full : !tile.tensor<?x?xf16>, !tgpu.smem<64x64xf16, swizzle = 128, stages = 2>, !tgpu.mbarrier<3>
  }
  func.return
}
// CHECK: error: 'tgpu.tma_load' op the buffer has 2 stages but the barrier array 3 barriers

// -----

/// WgmmaOp.verify_: a [M, K] x [K, N] product into an M x N accumulator.
func.func @wgmma_shapes(%s: i32) {
  %a_smem = tgpu.alloc_smem : !tgpu.smem<64x64xf16, swizzle = 128, stages = 1>
  %b_smem = tgpu.alloc_smem : !tgpu.smem<128x64xf16, swizzle = 128, stages = 1>
  %zero_f = arith.constant 0.000000e+00 : f32
  %zero = tile.splat %zero_f : f32 -> !tile.tile<64x64xf32>
  %acc = tgpu.to_fragment %zero : !tile.tile<64x64xf32> -> !tgpu.acc<64x64xf32>
  %d = tgpu.wgmma %a_smem[%s], %b_smem[%s], %acc : !tgpu.smem<64x64xf16, swizzle = 128, stages = 1>, !tgpu.smem<128x64xf16, swizzle = 128, stages = 1>, !tgpu.acc<64x64xf32>
  func.return
}
// CHECK: error: 'tgpu.wgmma' op wgmma shapes a [64, 64], b [128, 64], acc [64, 64] do not agree

// -----

/// AccType.verify: one warpgroup per 64 rows.
func.func @acc_rows(%x: !tgpu.acc<32x64xf32>) {
  func.return
}
// CHECK: a wgmma accumulator is M x N with M % 64 == 0 and N a multiple of 8 in [8, 256], got [32, 64]
