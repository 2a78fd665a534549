// RUN: TILEC_ROUNDTRIP
// RUN: TILEC_GENERIC_ROUNDTRIP

/// Every tgpu op and type prints and parses back in custom and generic form.
// CHECK-LABEL: func.func @tgpu_ops
//       CHECK:   %[[A_SMEM:.*]] = tgpu.alloc_smem : !tgpu.smem<128x64xf16, swizzle = 128, stages = 4>
//       CHECK:   %[[FULL:.*]] = tgpu.mbarrier_init {arrivals = 1 : i64} : !tgpu.mbarrier<4>
//       CHECK:   %[[S:.*]], %[[PHASE:.*]] = tgpu.stage %[[K:.*]], %[[LB:.*]] {stages = 4 : i64}
//       CHECK:   tgpu.elect {
//  CHECK-NEXT:     tgpu.mbarrier_arrive_expect_tx %[[FULL]][%[[S]]] {bytes = 32768 : i64} : !tgpu.mbarrier<4>
//  CHECK-NEXT:     tgpu.tma_load %[[A:.*]][%[[R:.*]], %[[C:.*]]] -> %[[A_SMEM]][%[[S]]], %[[FULL]] : !tile.tensor<?x?xf16>, !tgpu.smem<128x64xf16, swizzle = 128, stages = 4>, !tgpu.mbarrier<4>
//  CHECK-NEXT:   }
//  CHECK-NEXT:   tgpu.mbarrier_wait %[[FULL]][%[[S]]], %[[PHASE]] : !tgpu.mbarrier<4>
//  CHECK-NEXT:   tgpu.mbarrier_arrive %[[FULL]][%[[S]]] if %[[P:.*]] : !tgpu.mbarrier<4>
//  CHECK-NEXT:   tgpu.mbarrier_arrive %[[FULL]][%[[S]]] : !tgpu.mbarrier<4>
//       CHECK:   %[[ACC:.*]] = tgpu.to_fragment %{{.*}} : !tile.tile<128x128xf32> -> !tgpu.acc<128x128xf32>
//  CHECK-NEXT:   tgpu.wgmma_fence
//  CHECK-NEXT:   %[[D:.*]] = tgpu.wgmma %[[A_SMEM]][%[[S]]], %[[B_SMEM:.*]][%[[S]]], %[[ACC]]
//  CHECK-NEXT:   tgpu.wgmma_commit
//  CHECK-NEXT:   tgpu.wgmma_wait {pending = 1 : i64}
//  CHECK-NEXT:   tgpu.wgmma_wait
//  CHECK-NEXT:   %{{.*}} = tgpu.from_fragment %[[D]] : !tgpu.acc<128x128xf32> -> !tile.tile<128x128xf32>
//  CHECK-NEXT:   tgpu.store_fragment %[[CT:.*]][%[[R]], %[[C]]], %[[D]] : !tile.tensor<?x?xf16>, !tgpu.acc<128x128xf32>
//  CHECK-NEXT:   tgpu.copy %[[A]][%[[R]], %[[C]]] -> %[[A_SMEM]][%[[S]]]
// CHECK-GENERIC: "tgpu.stage"(%{{.*}}, %{{.*}}) <{stages = 4 : i64}> : (i32, i32) -> (i32, i32)
// CHECK-GENERIC: "tgpu.elect"() ({
func.func @tgpu_ops(%A: !tile.tensor<?x?xf16> {tile.div16}, %CT: !tile.tensor<?x?xf16>, %r: i32, %c: i32, %k: i32, %lb: i32, %p: i1) {
  %a_smem = tgpu.alloc_smem : !tgpu.smem<128x64xf16, swizzle = 128, stages = 4>
  %b_smem = tgpu.alloc_smem : !tgpu.smem<64x128xf16, swizzle = 128, stages = 4>
  %full = tgpu.mbarrier_init {arrivals = 1 : i64} : !tgpu.mbarrier<4>
  %s, %phase = tgpu.stage %k, %lb {stages = 4 : i64}
  tgpu.elect {
    tgpu.mbarrier_arrive_expect_tx %full[%s] {bytes = 32768 : i64} : !tgpu.mbarrier<4>
    tgpu.tma_load %A[%r, %c] -> %a_smem[%s], %full : !tile.tensor<?x?xf16>, !tgpu.smem<128x64xf16, swizzle = 128, stages = 4>, !tgpu.mbarrier<4>
  }
  tgpu.mbarrier_wait %full[%s], %phase : !tgpu.mbarrier<4>
  tgpu.mbarrier_arrive %full[%s] if %p : !tgpu.mbarrier<4>
  tgpu.mbarrier_arrive %full[%s] : !tgpu.mbarrier<4>
  %zero_f = arith.constant 0.000000e+00 : f32
  %zero = tile.splat %zero_f : f32 -> !tile.tile<128x128xf32>
  %acc = tgpu.to_fragment %zero : !tile.tile<128x128xf32> -> !tgpu.acc<128x128xf32>
  tgpu.wgmma_fence
  %d = tgpu.wgmma %a_smem[%s], %b_smem[%s], %acc : !tgpu.smem<128x64xf16, swizzle = 128, stages = 4>, !tgpu.smem<64x128xf16, swizzle = 128, stages = 4>, !tgpu.acc<128x128xf32>
  tgpu.wgmma_commit
  tgpu.wgmma_wait {pending = 1 : i64}
  tgpu.wgmma_wait
  %t = tgpu.from_fragment %d : !tgpu.acc<128x128xf32> -> !tile.tile<128x128xf32>
  tgpu.store_fragment %CT[%r, %c], %d : !tile.tensor<?x?xf16>, !tgpu.acc<128x128xf32>
  tgpu.copy %A[%r, %c] -> %a_smem[%s] : !tile.tensor<?x?xf16>, !tgpu.smem<128x64xf16, swizzle = 128, stages = 4>
  func.return
}
