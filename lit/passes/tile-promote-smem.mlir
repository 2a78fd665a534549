// RUN: tilec-opt %s -p tile-promote-smem --split-input-file | filecheck %s

/// [Pattern: PromoteKLoopOperands] IN: K loop of load A, load B, wgmma matmul  OUT: copies into 128B-swizzled buffers, tgpu.wgmma on them, fragments stored directly (the f16 cast folds into the store). Why: wgmma reads its operands from shared memory.
// CHECK-LABEL: func.func @promote_k_loop
//  CHECK-SAME:   attributes {tgpu.num_warps = 8 : i64}
//       CHECK:   %[[A_SMEM:.*]] = tgpu.alloc_smem : !tgpu.smem<128x64xf16, swizzle = 128, stages = 1>
//       CHECK:   %[[B_SMEM:.*]] = tgpu.alloc_smem : !tgpu.smem<64x128xf16, swizzle = 128, stages = 1>
//       CHECK:   %[[ACC0:.*]] = tgpu.to_fragment %[[ZERO:.*]] : !tile.tile<128x128xf32> -> !tgpu.acc<128x128xf32>
//       CHECK:   %[[RES:.*]] = scf.for %[[K:.*]] = {{.*}} iter_args(%[[ACC:.*]] = %[[ACC0]]) -> (!tgpu.acc<128x128xf32>)
//       CHECK:     %[[KK:.*]] = tile.mul %[[K]]
//  CHECK-NEXT:     tgpu.copy %[[A:.*]][%[[I:.*]], %[[KK]]] -> %[[A_SMEM]][%[[S0:.*]]]
//  CHECK-NEXT:     tgpu.copy %[[B:.*]][%[[KK]], %[[J:.*]]] -> %[[B_SMEM]][%[[S0]]]
//  CHECK-NEXT:     tgpu.wgmma_fence
//  CHECK-NEXT:     %[[D:.*]] = tgpu.wgmma %[[A_SMEM]][%[[S0]]], %[[B_SMEM]][%[[S0]]], %[[ACC]]
//  CHECK-NEXT:     tgpu.wgmma_commit
//  CHECK-NEXT:     tgpu.wgmma_wait
//  CHECK-NEXT:     scf.yield %[[D]] : !tgpu.acc<128x128xf32>
//   CHECK-NOT:   tile.cast
//       CHECK:   tgpu.store_fragment %[[C:.*]][%[[I]], %[[J]]], %[[RES]] : !tile.tensor<?x?xf16>, !tgpu.acc<128x128xf32>
func.func @promote_k_loop(%A: !tile.tensor<?x?xf16> {tile.div16}, %B: !tile.tensor<?x?xf16> {tile.div16}, %C: !tile.tensor<?x?xf16>, %i: i32, %j: i32, %n: i32) {
  %zero_f = arith.constant 0.000000e+00 : f32
  %zero = tile.splat %zero_f : f32 -> !tile.tile<128x128xf32>
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %c64 = arith.constant 64 : i32
  %r = scf.for %k = %c0 to %n step %c1 iter_args(%acc = %zero) -> (!tile.tile<128x128xf32>) : i32 {
    %kk = tile.mul %k, %c64 : i32
    %a = tile.load %A[%i, %kk] : !tile.tensor<?x?xf16> -> !tile.tile<128x64xf16>
    %b = tile.load %B[%kk, %j] : !tile.tensor<?x?xf16> -> !tile.tile<64x128xf16>
    %d = tile.matmul %a, %b, %acc {mma = "wgmma.m64n128k16.f32.f16.f16"} : !tile.tile<128x64xf16>, !tile.tile<64x128xf16> -> !tile.tile<128x128xf32>
    scf.yield %d : !tile.tile<128x128xf32>
  }
  %h = tile.cast %r : !tile.tile<128x128xf32> -> !tile.tile<128x128xf16>
  tile.store %C[%i, %j], %h : !tile.tensor<?x?xf16>, !tile.tile<128x128xf16>
  func.return
}

// -----

/// [Pattern: PromoteKLoopOperands] An accumulator used by other ops after the loop comes back through shared memory (tgpu.from_fragment).
// CHECK-LABEL: func.func @promote_epilogue_through_smem
//  CHECK-SAME:   attributes {tgpu.num_warps = 4 : i64}
//       CHECK:   %[[RES:.*]] = scf.for
//       CHECK:   %[[T:.*]] = tgpu.from_fragment %[[RES]] : !tgpu.acc<64x64xf32> -> !tile.tile<64x64xf32>
//  CHECK-NEXT:   %[[R:.*]] = tile.relu %[[T]]
func.func @promote_epilogue_through_smem(%A: !tile.tensor<?x?xbf16> {tile.div16}, %B: !tile.tensor<?x?xbf16> {tile.div16}, %C: !tile.tensor<?x?xf32>, %n: i32) {
  %zero_f = arith.constant 0.000000e+00 : f32
  %zero = tile.splat %zero_f : f32 -> !tile.tile<64x64xf32>
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %r = scf.for %k = %c0 to %n step %c1 iter_args(%acc = %zero) -> (!tile.tile<64x64xf32>) : i32 {
    %a = tile.load %A[%c0, %k] : !tile.tensor<?x?xbf16> -> !tile.tile<64x64xbf16>
    %b = tile.load %B[%k, %c0] : !tile.tensor<?x?xbf16> -> !tile.tile<64x64xbf16>
    %d = tile.matmul %a, %b, %acc {mma = "wgmma.m64n64k16.f32.bf16.bf16"} : !tile.tile<64x64xbf16>, !tile.tile<64x64xbf16> -> !tile.tile<64x64xf32>
    scf.yield %d : !tile.tile<64x64xf32>
  }
  %relu = tile.relu %r : !tile.tile<64x64xf32>
  tile.store %C[%c0, %c0], %relu : !tile.tensor<?x?xf32>, !tile.tile<64x64xf32>
  func.return
}

// -----

/// [Pattern: DowngradeUnpromotedWgmma] Negative: A is not known 16-byte aligned (no {tile.div16}), so no TMA: the matmul stays in registers on mma.sync.
// CHECK-LABEL: func.func @negative_unaligned_operand
//   CHECK-NOT:   tgpu.
//       CHECK:   tile.matmul %{{.*}} {mma = "mma.sync.m16n8k16.row.col.f32.f16.f16.f32"}
//   CHECK-NOT:   tgpu.
func.func @negative_unaligned_operand(%A: !tile.tensor<?x?xf16>, %B: !tile.tensor<?x?xf16> {tile.div16}, %n: i32) -> !tile.tile<64x64xf32> {
  %zero_f = arith.constant 0.000000e+00 : f32
  %zero = tile.splat %zero_f : f32 -> !tile.tile<64x64xf32>
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %r = scf.for %k = %c0 to %n step %c1 iter_args(%acc = %zero) -> (!tile.tile<64x64xf32>) : i32 {
    %a = tile.load %A[%c0, %k] : !tile.tensor<?x?xf16> -> !tile.tile<64x64xf16>
    %b = tile.load %B[%k, %c0] : !tile.tensor<?x?xf16> -> !tile.tile<64x64xf16>
    %d = tile.matmul %a, %b, %acc {mma = "wgmma.m64n64k16.f32.f16.f16"} : !tile.tile<64x64xf16>, !tile.tile<64x64xf16> -> !tile.tile<64x64xf32>
    scf.yield %d : !tile.tile<64x64xf32>
  }
  func.return %r : !tile.tile<64x64xf32>
}

// -----

/// [Pattern: DowngradeUnpromotedWgmma] Negative: BK = 32 rows are 64 bytes, not the 128-byte swizzle span.
// CHECK-LABEL: func.func @negative_bk_32
//   CHECK-NOT:   tgpu.
//       CHECK:   tile.matmul %{{.*}} {mma = "mma.sync.m16n8k16.row.col.f32.f16.f16.f32"}
func.func @negative_bk_32(%A: !tile.tensor<?x?xf16> {tile.div16}, %B: !tile.tensor<?x?xf16> {tile.div16}, %n: i32) -> !tile.tile<64x64xf32> {
  %zero_f = arith.constant 0.000000e+00 : f32
  %zero = tile.splat %zero_f : f32 -> !tile.tile<64x64xf32>
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %r = scf.for %k = %c0 to %n step %c1 iter_args(%acc = %zero) -> (!tile.tile<64x64xf32>) : i32 {
    %a = tile.load %A[%c0, %k] : !tile.tensor<?x?xf16> -> !tile.tile<64x32xf16>
    %b = tile.load %B[%k, %c0] : !tile.tensor<?x?xf16> -> !tile.tile<32x64xf16>
    %d = tile.matmul %a, %b, %acc {mma = "wgmma.m64n64k16.f32.f16.f16"} : !tile.tile<64x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<64x64xf32>
    scf.yield %d : !tile.tile<64x64xf32>
  }
  func.return %r : !tile.tile<64x64xf32>
}
