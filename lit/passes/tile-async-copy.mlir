// RUN: tilec-opt %s -p tile-async-copy{num-stages=3} --split-input-file | filecheck %s
// RUN: tilec-opt %s -p tile-async-copy --split-input-file | filecheck %s --check-prefix=DEFAULT

/// [Pattern: PipelineKLoop] IN: K loop of synchronous copies + wgmma  OUT: 3-stage buffers, full/empty mbarriers, a prologue issuing 2 iterations ahead, TMA in tgpu.elect, one wgmma group in flight. Why: TMA for later iterations overlaps the tensor cores.
// CHECK-LABEL: func.func @pipeline_k_loop
//       CHECK:   %[[A_SMEM:.*]] = tgpu.alloc_smem : !tgpu.smem<128x64xf16, swizzle = 128, stages = 3>
//       CHECK:   %[[B_SMEM:.*]] = tgpu.alloc_smem : !tgpu.smem<64x128xf16, swizzle = 128, stages = 3>
//       CHECK:   %[[FULL:.*]] = tgpu.mbarrier_init {arrivals = 1 : i64} : !tgpu.mbarrier<3>
//       CHECK:   %[[EMPTY:.*]] = tgpu.mbarrier_init {arrivals = 2 : i64} : !tgpu.mbarrier<3>
//       CHECK:   %[[AHEAD:.*]] = arith.constant 2 : i32
//       CHECK:   %[[PEND:.*]] = tile.minimum %{{.*}}, %[[N:.*]] : i32
//       CHECK:   scf.for %[[KP:.*]] = %[[LB:.*]] to %[[PEND]]
//       CHECK:     %[[PS:.*]], %[[PPHASE:.*]] = tgpu.stage %[[KP]], %[[LB]] {stages = 3 : i64}
//       CHECK:     tgpu.elect {
//       CHECK:       %[[FREED:.*]] = tile.xor %[[PPHASE]]
//  CHECK-NEXT:       tgpu.mbarrier_wait %[[EMPTY]][%[[PS]]], %[[FREED]]
//  CHECK-NEXT:       tgpu.mbarrier_arrive_expect_tx %[[FULL]][%[[PS]]] {bytes = 32768 : i64}
//       CHECK:       tgpu.tma_load %[[A:.*]][%{{.*}}, %{{.*}}] -> %[[A_SMEM]][%[[PS]]], %[[FULL]]
//  CHECK-NEXT:       tgpu.tma_load %[[B:.*]][%{{.*}}, %{{.*}}] -> %[[B_SMEM]][%[[PS]]], %[[FULL]]
//       CHECK:   %[[RES:.*]] = scf.for %[[K:.*]] = %[[LB]] to %[[N]] {{.*}} iter_args(%[[ACC:.*]] = %{{.*}}) -> (!tgpu.acc<128x128xf32>)
//  CHECK-NEXT:     %[[STAGE:.*]], %[[PHASE:.*]] = tgpu.stage %[[K]], %[[LB]] {stages = 3 : i64}
//  CHECK-NEXT:     tgpu.mbarrier_wait %[[FULL]][%[[STAGE]]], %[[PHASE]]
//  CHECK-NEXT:     tgpu.wgmma_fence
//  CHECK-NEXT:     %[[D:.*]] = tgpu.wgmma %[[A_SMEM]][%[[STAGE]]], %[[B_SMEM]][%[[STAGE]]], %[[ACC]]
//  CHECK-NEXT:     tgpu.wgmma_commit
//  CHECK-NEXT:     tgpu.wgmma_wait {pending = 1 : i64}
//       CHECK:     %[[PREV:.*]], %{{.*}} = tgpu.stage
//  CHECK-NEXT:     %[[STARTED:.*]] = tile.cmp "gt" %[[K]], %[[LB]]
//  CHECK-NEXT:     tgpu.mbarrier_arrive %[[EMPTY]][%[[PREV]]] if %[[STARTED]]
//  CHECK-NEXT:     %[[KN:.*]] = tile.add %[[K]], %[[AHEAD]]
//  CHECK-NEXT:     %[[MORE:.*]] = tile.cmp "lt" %[[KN]], %[[N]]
//  CHECK-NEXT:     scf.if %[[MORE]] {
//       CHECK:       tgpu.elect {
//       CHECK:     scf.yield %[[D]] : !tgpu.acc<128x128xf32>
//       CHECK:   tgpu.wgmma_wait
//  CHECK-NEXT:   tgpu.store_fragment %{{.*}}, %[[RES]]
//   CHECK-NOT:   tgpu.copy
// DEFAULT-LABEL: func.func @pipeline_k_loop
//       DEFAULT:   tgpu.alloc_smem : !tgpu.smem<128x64xf16, swizzle = 128, stages = 4>
func.func @pipeline_k_loop(%A: !tile.tensor<?x?xf16> {tile.div16}, %B: !tile.tensor<?x?xf16> {tile.div16}, %C: !tile.tensor<?x?xf16>, %i: i32, %j: i32, %n: i32) attributes {tgpu.num_warps = 8 : i64} {
  %zero_f = arith.constant 0.000000e+00 : f32
  %zero = tile.splat %zero_f : f32 -> !tile.tile<128x128xf32>
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %c64 = arith.constant 64 : i32
  %s0 = arith.constant 0 : i32
  %a_smem = tgpu.alloc_smem : !tgpu.smem<128x64xf16, swizzle = 128, stages = 1>
  %b_smem = tgpu.alloc_smem : !tgpu.smem<64x128xf16, swizzle = 128, stages = 1>
  %acc0 = tgpu.to_fragment %zero : !tile.tile<128x128xf32> -> !tgpu.acc<128x128xf32>
  %r = scf.for %k = %c0 to %n step %c1 iter_args(%acc = %acc0) -> (!tgpu.acc<128x128xf32>) : i32 {
    %kk = tile.mul %k, %c64 : i32
    tgpu.copy %A[%i, %kk] -> %a_smem[%s0] : !tile.tensor<?x?xf16>, !tgpu.smem<128x64xf16, swizzle = 128, stages = 1>
    tgpu.copy %B[%kk, %j] -> %b_smem[%s0] : !tile.tensor<?x?xf16>, !tgpu.smem<64x128xf16, swizzle = 128, stages = 1>
    tgpu.wgmma_fence
    %d = tgpu.wgmma %a_smem[%s0], %b_smem[%s0], %acc : !tgpu.smem<128x64xf16, swizzle = 128, stages = 1>, !tgpu.smem<64x128xf16, swizzle = 128, stages = 1>, !tgpu.acc<128x128xf32>
    tgpu.wgmma_commit
    tgpu.wgmma_wait
    scf.yield %d : !tgpu.acc<128x128xf32>
  }
  tgpu.store_fragment %C[%i, %j], %r : !tile.tensor<?x?xf16>, !tgpu.acc<128x128xf32>
  func.return
}

// -----

/// [Pattern: PipelineKLoop] Negative: a wgmma that reads a buffer nothing copies into in the loop is left alone.
// CHECK-LABEL: func.func @negative_no_copy_in_loop
//   CHECK-NOT:   tgpu.mbarrier_init
//       CHECK:   tgpu.wgmma_wait
//   CHECK-NOT:   pending = 1
func.func @negative_no_copy_in_loop(%n: i32) {
  %zero_f = arith.constant 0.000000e+00 : f32
  %zero = tile.splat %zero_f : f32 -> !tile.tile<64x64xf32>
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %a_smem = tgpu.alloc_smem : !tgpu.smem<64x64xf16, swizzle = 128, stages = 1>
  %b_smem = tgpu.alloc_smem : !tgpu.smem<64x64xf16, swizzle = 128, stages = 1>
  %acc0 = tgpu.to_fragment %zero : !tile.tile<64x64xf32> -> !tgpu.acc<64x64xf32>
  %r = scf.for %k = %c0 to %n step %c1 iter_args(%acc = %acc0) -> (!tgpu.acc<64x64xf32>) : i32 {
    tgpu.wgmma_fence
    %d = tgpu.wgmma %a_smem[%c0], %b_smem[%c0], %acc : !tgpu.smem<64x64xf16, swizzle = 128, stages = 1>, !tgpu.smem<64x64xf16, swizzle = 128, stages = 1>, !tgpu.acc<64x64xf32>
    tgpu.wgmma_commit
    tgpu.wgmma_wait
    scf.yield %d : !tgpu.acc<64x64xf32>
  }
  func.return
}
