// RUN: tilec-opt %s --split-input-file --verify-diagnostics --parsing-diagnostics | filecheck %s

/// One case per verifier error of the sm_80 ops, dialects/tgpu/cp_async.py.

/// MmaSyncOp.verify_: the operand tiles and the accumulator must agree (K differs here).
func.func @mma_sync_k_mismatch(%s: i32, %acc: !tgpu.acc<64x64xf32>) {
  %a_smem = tgpu.cp_async_alloc : !tgpu.smem<64x32xf16, swizzle = 64, stages = 3>
  %b_smem = tgpu.cp_async_alloc : !tgpu.smem<64x64xf16, swizzle = 128, stages = 3>
  %d = tgpu.mma_sync %a_smem[%s], %b_smem[%s], %acc : !tgpu.smem<64x32xf16, swizzle = 64, stages = 3>, !tgpu.smem<64x64xf16, swizzle = 128, stages = 3>, !tgpu.acc<64x64xf32>
  func.return
}
// CHECK: mma.sync shapes a [64, 32], b [64, 64], acc [64, 64] do not agree

// -----

/// CpAsyncAllocOp.verify_: cp.async buffers hold 16-bit elements.
func.func @cp_async_alloc_f32() {
  %a_smem = tgpu.cp_async_alloc : !tgpu.smem<64x32xf32, swizzle = 128, stages = 3>
  func.return
}
// CHECK: cp.async buffers hold 16-bit elements with a 32/64/128-byte swizzle

// -----

/// CpAsyncWaitOp.verify_: wait_group takes 0..7.
func.func @cp_async_wait_range() {
  tgpu.cp_async_wait {pending = 9 : i64}
  func.return
}
// CHECK: cp.async.wait_group takes 0..7 pending groups, got 9

// -----

/// MmaAccType.verify: each warp's block is whole 16x16 tiles.
func.func @mma_acc_bad_grid(%x: !tgpu.mma_acc<64x64xf32, warps_m = 8, warps_n = 1>) {
  func.return
}
// CHECK: a 64x64 accumulator over 8x1 warps needs blocks of whole 16x16 tiles per warp
