// RUN: TILEC_ROUNDTRIP
// RUN: TILEC_GENERIC_ROUNDTRIP

/// The sm_80 tgpu ops (cp.async stage buffers, commit groups, mma.sync on a register accumulator) print and parse back in custom and generic form.
// CHECK-LABEL: func.func @tgpu_cp_async_ops
//       CHECK:   %[[A_SMEM:.*]] = tgpu.cp_async_alloc : !tgpu.smem<64x32xf16, swizzle = 64, stages = 3>
//  CHECK-NEXT:   %[[B_SMEM:.*]] = tgpu.cp_async_alloc : !tgpu.smem<32x64xf16, swizzle = 128, stages = 3>
//  CHECK-NEXT:   tgpu.cp_async %[[A:.*]][%[[R:.*]], %[[C:.*]]] -> %[[A_SMEM]][%[[S:.*]]] : !tile.tensor<?x?xf16>, !tgpu.smem<64x32xf16, swizzle = 64, stages = 3>
//  CHECK-NEXT:   tgpu.cp_async_commit
//  CHECK-NEXT:   tgpu.cp_async_wait {pending = 1 : i64}
//       CHECK:   %{{.*}} = tgpu.mma_sync %[[A_SMEM]][%[[S]]], %[[B_SMEM]][%[[S]]], %{{.*}} : !tgpu.smem<64x32xf16, swizzle = 64, stages = 3>, !tgpu.smem<32x64xf16, swizzle = 128, stages = 3>, !tgpu.acc<64x64xf32>
// CHECK-GENERIC: "tgpu.cp_async_wait"() <{pending = 1 : i64}> : () -> ()
// CHECK-GENERIC: "tgpu.mma_sync"
func.func @tgpu_cp_async_ops(%A: !tile.tensor<?x?xf16> {tile.div16}, %r: i32, %c: i32, %s: i32) {
  %a_smem = tgpu.cp_async_alloc : !tgpu.smem<64x32xf16, swizzle = 64, stages = 3>
  %b_smem = tgpu.cp_async_alloc : !tgpu.smem<32x64xf16, swizzle = 128, stages = 3>
  tgpu.cp_async %A[%r, %c] -> %a_smem[%s] : !tile.tensor<?x?xf16>, !tgpu.smem<64x32xf16, swizzle = 64, stages = 3>
  tgpu.cp_async_commit
  tgpu.cp_async_wait {pending = 1 : i64}
  %zero_f = arith.constant 0.000000e+00 : f32
  %zero = tile.splat %zero_f : f32 -> !tile.tile<64x64xf32>
  %acc = tgpu.to_fragment %zero : !tile.tile<64x64xf32> -> !tgpu.acc<64x64xf32>
  %d = tgpu.mma_sync %a_smem[%s], %b_smem[%s], %acc : !tgpu.smem<64x32xf16, swizzle = 64, stages = 3>, !tgpu.smem<32x64xf16, swizzle = 128, stages = 3>, !tgpu.acc<64x64xf32>
  func.return
}


// -----

/// The register accumulator over a warp grid: !tgpu.mma_acc, its init, mma_sync on it, store and conversion to a tile.
// CHECK-LABEL: func.func @tgpu_mma_acc_ops
//       CHECK:   %[[ACC:.*]] = tgpu.mma_acc_init %{{.*}} : f32 -> !tgpu.mma_acc<64x64xf32, warps_m = 2, warps_n = 2>
//  CHECK-NEXT:   %[[D:.*]] = tgpu.mma_sync %{{.*}}[%[[S:.*]]], %{{.*}}[%[[S]]], %[[ACC]] : {{.*}}, !tgpu.mma_acc<64x64xf32, warps_m = 2, warps_n = 2>
//  CHECK-NEXT:   tgpu.mma_acc_store %{{.*}}[%{{.*}}, %{{.*}}], %[[D]] : !tile.tensor<?x?xf16>, !tgpu.mma_acc<64x64xf32, warps_m = 2, warps_n = 2>
//  CHECK-NEXT:   %{{.*}} = tgpu.mma_acc_to_tile %[[D]] : !tgpu.mma_acc<64x64xf32, warps_m = 2, warps_n = 2> -> !tile.tile<64x64xf32>
// CHECK-GENERIC: "tgpu.mma_acc_init"
func.func @tgpu_mma_acc_ops(%C: !tile.tensor<?x?xf16>, %r: i32, %s: i32) {
  %a_smem = tgpu.cp_async_alloc : !tgpu.smem<64x32xf16, swizzle = 64, stages = 3>
  %b_smem = tgpu.cp_async_alloc : !tgpu.smem<32x64xf16, swizzle = 128, stages = 3>
  %zero_f = arith.constant 0.000000e+00 : f32
  %acc = tgpu.mma_acc_init %zero_f : f32 -> !tgpu.mma_acc<64x64xf32, warps_m = 2, warps_n = 2>
  %d = tgpu.mma_sync %a_smem[%s], %b_smem[%s], %acc : !tgpu.smem<64x32xf16, swizzle = 64, stages = 3>, !tgpu.smem<32x64xf16, swizzle = 128, stages = 3>, !tgpu.mma_acc<64x64xf32, warps_m = 2, warps_n = 2>
  tgpu.mma_acc_store %C[%r, %r], %d : !tile.tensor<?x?xf16>, !tgpu.mma_acc<64x64xf32, warps_m = 2, warps_n = 2>
  %t = tgpu.mma_acc_to_tile %d : !tgpu.mma_acc<64x64xf32, warps_m = 2, warps_n = 2> -> !tile.tile<64x64xf32>
  func.return
}
