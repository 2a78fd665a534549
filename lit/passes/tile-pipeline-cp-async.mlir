// RUN: tilec-opt %s -p tile-pipeline-cp-async{num-stages=3} --split-input-file | filecheck %s
// RUN: tilec-opt %s -p tile-pipeline-cp-async{num-stages=4} --split-input-file | filecheck %s --check-prefix=FOUR
// RUN: tilec-opt %s -p "tile-pipeline-cp-async{warp-strips=true}" --split-input-file | filecheck %s --check-prefix=STRIPS

/// [Pattern: PipelineMmaKLoop] IN: K loop of two global loads + an mma.sync matmul from a zero splat  OUT: swizzled 3-stage cp.async buffers, a prologue committing 2 stages, a loop that waits for its stage (wait_group 1), issues the copies 2 iterations ahead, and runs tgpu.mma_sync on a register accumulator over a 2x2 warp grid; wait_group 0 and a register store after it. Why: the copies of later iterations overlap the tensor cores.
// CHECK-LABEL: func.func @pipeline_mma_k_loop
//  CHECK-SAME:   attributes {tgpu.num_warps = 4 : i64}
//       CHECK:   %[[ACC0:.*]] = tgpu.mma_acc_init %{{.*}} : f32 -> !tgpu.mma_acc<64x64xf32, warps_m = 2, warps_n = 2>
//  CHECK-NEXT:   %[[A_SMEM:.*]] = tgpu.cp_async_alloc : !tgpu.smem<64x32xf16, swizzle = 64, stages = 3>
//  CHECK-NEXT:   %[[B_SMEM:.*]] = tgpu.cp_async_alloc : !tgpu.smem<32x64xf16, swizzle = 128, stages = 3>
//       CHECK:   %[[AHEAD:.*]] = arith.constant 2 : i32
//       CHECK:   scf.for %[[KP:.*]] = %[[LB:.*]] to %{{.*}} step
//  CHECK-NEXT:     %[[PS:.*]], %{{.*}} = tgpu.stage %[[KP]], %[[LB]] {stages = 3 : i64}
//  CHECK-NEXT:     %[[LIVE:.*]] = tile.cmp "lt" %[[KP]], %[[N:.*]] : i32 -> i1
//  CHECK-NEXT:     scf.if %[[LIVE]] {
//       CHECK:       tgpu.cp_async %[[A:.*]][%{{.*}}, %{{.*}}] -> %[[A_SMEM]][%[[PS]]]
//  CHECK-NEXT:       tgpu.cp_async %[[B:.*]][%{{.*}}, %{{.*}}] -> %[[B_SMEM]][%[[PS]]]
//       CHECK:     tgpu.cp_async_commit
//       CHECK:   %[[RES:.*]] = scf.for %[[K:.*]] = %[[LB]] to %[[N]] {{.*}} iter_args(%[[ACC:.*]] = %[[ACC0]]) -> (!tgpu.mma_acc<64x64xf32, warps_m = 2, warps_n = 2>)
//  CHECK-NEXT:     tgpu.cp_async_wait {pending = 1 : i64}
//  CHECK-NEXT:     %[[STAGE:.*]], %{{.*}} = tgpu.stage %[[K]], %[[LB]] {stages = 3 : i64}
//  CHECK-NEXT:     %[[KN:.*]] = tile.add %[[K]], %[[AHEAD]]
//  CHECK-NEXT:     %[[NS:.*]], %{{.*}} = tgpu.stage %[[KN]], %[[LB]] {stages = 3 : i64}
//  CHECK-NEXT:     %[[MORE:.*]] = tile.cmp "lt" %[[KN]], %[[N]]
//  CHECK-NEXT:     scf.if %[[MORE]] {
//       CHECK:       tgpu.cp_async %[[A]][%{{.*}}, %{{.*}}] -> %[[A_SMEM]][%[[NS]]]
//  CHECK-NEXT:       tgpu.cp_async %[[B]][%{{.*}}, %{{.*}}] -> %[[B_SMEM]][%[[NS]]]
//       CHECK:     tgpu.cp_async_commit
//  CHECK-NEXT:     %[[D:.*]] = tgpu.mma_sync %[[A_SMEM]][%[[STAGE]]], %[[B_SMEM]][%[[STAGE]]], %[[ACC]]
//  CHECK-NEXT:     scf.yield %[[D]] : !tgpu.mma_acc<64x64xf32, warps_m = 2, warps_n = 2>
//       CHECK:   tgpu.cp_async_wait {pending = 0 : i64}
//  CHECK-NEXT:   tgpu.mma_acc_store %{{.*}}, %[[RES]]
//   CHECK-NOT:   tile.matmul
// FOUR-LABEL: func.func @pipeline_mma_k_loop
//       FOUR:   tgpu.cp_async_alloc : !tgpu.smem<64x32xf16, swizzle = 64, stages = 4>
//       FOUR:   tgpu.cp_async_wait {pending = 2 : i64}
// STRIPS-LABEL: func.func @pipeline_mma_k_loop
//  STRIPS-SAME:   attributes {tgpu.num_warps = 4 : i64}
//       STRIPS:   %[[ACC0:.*]] = tgpu.to_fragment %{{.*}} : !tile.tile<64x64xf32> -> !tgpu.acc<64x64xf32>
//       STRIPS:   scf.for {{.*}} iter_args(%{{.*}} = %[[ACC0]]) -> (!tgpu.acc<64x64xf32>)
//       STRIPS:     tgpu.mma_sync
//       STRIPS:   tgpu.store_fragment
func.func @pipeline_mma_k_loop(%A: !tile.tensor<?x?xf16> {tile.div16}, %B: !tile.tensor<?x?xf16> {tile.div16}, %C: !tile.tensor<?x?xf32>, %i: i32, %j: i32, %n: i32) {
  %zero_f = arith.constant 0.000000e+00 : f32
  %zero = tile.splat %zero_f : f32 -> !tile.tile<64x64xf32>
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %c32 = arith.constant 32 : i32
  %c64 = arith.constant 64 : i32
  %jj = tile.mul %j, %c64 : i32
  %r = scf.for %k = %c0 to %n step %c1 iter_args(%acc = %zero) -> (!tile.tile<64x64xf32>) : i32 {
    %kk = tile.mul %k, %c32 : i32
    %a = tile.load %A[%i, %kk] : !tile.tensor<?x?xf16> -> !tile.tile<64x32xf16>
    %b = tile.load %B[%kk, %jj] : !tile.tensor<?x?xf16> -> !tile.tile<32x64xf16>
    %d = tile.matmul %a, %b, %acc {mma = "mma.sync.m16n8k16.row.col.f32.f16.f16.f32"} : !tile.tile<64x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<64x64xf32>
    scf.yield %d : !tile.tile<64x64xf32>
  }
  tile.store %C[%i, %jj], %r : !tile.tensor<?x?xf32>, !tile.tile<64x64xf32>
  func.return
}

// -----

/// [Negative: rows not 16-byte aligned] B has no {tile.div16}: 16-byte cp.async chunks could straddle rows, so the loop keeps the register path.
// CHECK-LABEL: func.func @negative_unaligned_rows
//   CHECK-NOT:   tgpu.cp_async
//       CHECK:   tile.matmul
func.func @negative_unaligned_rows(%A: !tile.tensor<?x?xf16> {tile.div16}, %B: !tile.tensor<?x?xf16>, %C: !tile.tensor<?x?xf32>, %i: i32, %n: i32) {
  %zero_f = arith.constant 0.000000e+00 : f32
  %zero = tile.splat %zero_f : f32 -> !tile.tile<64x64xf32>
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %c32 = arith.constant 32 : i32
  %r = scf.for %k = %c0 to %n step %c1 iter_args(%acc = %zero) -> (!tile.tile<64x64xf32>) : i32 {
    %kk = tile.mul %k, %c32 : i32
    %a = tile.load %A[%i, %kk] : !tile.tensor<?x?xf16> -> !tile.tile<64x32xf16>
    %b = tile.load %B[%kk, %c0] : !tile.tensor<?x?xf16> -> !tile.tile<32x64xf16>
    %d = tile.matmul %a, %b, %acc {mma = "mma.sync.m16n8k16.row.col.f32.f16.f16.f32"} : !tile.tile<64x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<64x64xf32>
    scf.yield %d : !tile.tile<64x64xf32>
  }
  tile.store %C[%i, %c0], %r : !tile.tensor<?x?xf32>, !tile.tile<64x64xf32>
  func.return
}

// -----

/// [Negative: column offset not a multiple of 8] %j is a run-time value: a 16-byte chunk of A's tile could start mid-chunk, so the loop keeps the register path.
// CHECK-LABEL: func.func @negative_unaligned_column_offset
//   CHECK-NOT:   tgpu.cp_async
//       CHECK:   tile.matmul
func.func @negative_unaligned_column_offset(%A: !tile.tensor<?x?xf16> {tile.div16}, %B: !tile.tensor<?x?xf16> {tile.div16}, %C: !tile.tensor<?x?xf32>, %i: i32, %j: i32, %n: i32) {
  %zero_f = arith.constant 0.000000e+00 : f32
  %zero = tile.splat %zero_f : f32 -> !tile.tile<64x64xf32>
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %c32 = arith.constant 32 : i32
  %r = scf.for %k = %c0 to %n step %c1 iter_args(%acc = %zero) -> (!tile.tile<64x64xf32>) : i32 {
    %kk = tile.mul %k, %c32 : i32
    %kj = tile.add %kk, %j : i32
    %a = tile.load %A[%i, %kj] : !tile.tensor<?x?xf16> -> !tile.tile<64x32xf16>
    %b = tile.load %B[%kk, %c0] : !tile.tensor<?x?xf16> -> !tile.tile<32x64xf16>
    %d = tile.matmul %a, %b, %acc {mma = "mma.sync.m16n8k16.row.col.f32.f16.f16.f32"} : !tile.tile<64x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<64x64xf32>
    scf.yield %d : !tile.tile<64x64xf32>
  }
  tile.store %C[%i, %c0], %r : !tile.tensor<?x?xf32>, !tile.tile<64x64xf32>
  func.return
}

// -----

/// [Negative: FMA matmul] an f32 matmul recorded as FMA has no mma.sync operands to stage.
// CHECK-LABEL: func.func @negative_fma_matmul
//   CHECK-NOT:   tgpu.cp_async
//       CHECK:   tile.matmul
func.func @negative_fma_matmul(%A: !tile.tensor<?x?xf32> {tile.div16}, %B: !tile.tensor<?x?xf32> {tile.div16}, %C: !tile.tensor<?x?xf32>, %i: i32, %n: i32) {
  %zero_f = arith.constant 0.000000e+00 : f32
  %zero = tile.splat %zero_f : f32 -> !tile.tile<64x64xf32>
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %c32 = arith.constant 32 : i32
  %r = scf.for %k = %c0 to %n step %c1 iter_args(%acc = %zero) -> (!tile.tile<64x64xf32>) : i32 {
    %kk = tile.mul %k, %c32 : i32
    %a = tile.load %A[%i, %kk] : !tile.tensor<?x?xf32> -> !tile.tile<64x32xf32>
    %b = tile.load %B[%kk, %c0] : !tile.tensor<?x?xf32> -> !tile.tile<32x64xf32>
    %d = tile.matmul %a, %b, %acc {mma = "fma.rn.f32"} : !tile.tile<64x32xf32>, !tile.tile<32x64xf32> -> !tile.tile<64x64xf32>
    scf.yield %d : !tile.tile<64x64xf32>
  }
  tile.store %C[%i, %c0], %r : !tile.tensor<?x?xf32>, !tile.tile<64x64xf32>
  func.return
}

// -----

/// [Pattern: PipelineMmaKLoop, loaded accumulator] the accumulator starts from a loaded tile, not a splat: it enters 16-row warp strips (`!tgpu.acc`, BM / 16 warps) through tgpu.to_fragment.
// CHECK-LABEL: func.func @loaded_accumulator_uses_warp_strips
//  CHECK-SAME:   attributes {tgpu.num_warps = 8 : i64}
//       CHECK:   %[[ACC0:.*]] = tgpu.to_fragment %{{.*}} : !tile.tile<128x64xf32> -> !tgpu.acc<128x64xf32>
//       CHECK:   scf.for {{.*}} iter_args(%{{.*}} = %[[ACC0]]) -> (!tgpu.acc<128x64xf32>)
//       CHECK:   tgpu.store_fragment
func.func @loaded_accumulator_uses_warp_strips(%A: !tile.tensor<?x?xf16> {tile.div16}, %B: !tile.tensor<?x?xf16> {tile.div16}, %C: !tile.tensor<?x?xf32>, %i: i32, %n: i32) {
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %c32 = arith.constant 32 : i32
  %init = tile.load %C[%i, %c0] : !tile.tensor<?x?xf32> -> !tile.tile<128x64xf32>
  %r = scf.for %k = %c0 to %n step %c1 iter_args(%acc = %init) -> (!tile.tile<128x64xf32>) : i32 {
    %kk = tile.mul %k, %c32 : i32
    %a = tile.load %A[%i, %kk] : !tile.tensor<?x?xf16> -> !tile.tile<128x32xf16>
    %b = tile.load %B[%kk, %c0] : !tile.tensor<?x?xf16> -> !tile.tile<32x64xf16>
    %d = tile.matmul %a, %b, %acc {mma = "mma.sync.m16n8k16.row.col.f32.f16.f16.f32"} : !tile.tile<128x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<128x64xf32>
    scf.yield %d : !tile.tile<128x64xf32>
  }
  tile.store %C[%i, %c0], %r : !tile.tensor<?x?xf32>, !tile.tile<128x64xf32>
  func.return
}
