// RUN: TILEC_ROUNDTRIP
// RUN: TILEC_GENERIC_ROUNDTRIP

/// The flash-attention tgpu ops print and parse back in custom and generic form: K-major B wgmma, register-A wgmma, mask, warpgroup turns, 4-D TMA load and fragment store.
// CHECK-LABEL: func.func @tgpu_attention_ops
//       CHECK:   tgpu.tma_load %[[K:.*]][%[[B:.*]], %[[H:.*]], %[[R:.*]], %[[C:.*]]] -> %[[K_SMEM:.*]][%[[S:.*]]], %[[FULL:.*]] : !tile.tensor<?x?x?x128xf16>
//       CHECK:   %[[SA:.*]] = tgpu.wgmma %[[Q_SMEM:.*]][%[[S]]], %[[K_SMEM]][%[[S]]], %{{.*}} {b_kmajor} : !tgpu.smem<128x128xf16, swizzle = 128, stages = 1>, !tgpu.smem<64x128xf16, swizzle = 128, stages = 2>, !tgpu.acc<128x64xf32>
//  CHECK-NEXT:   tgpu.turn {kind = "pass"}
//  CHECK-NEXT:   %[[ST:.*]] = tgpu.from_fragment %[[SA]]
//  CHECK-NEXT:   %[[M:.*]] = tgpu.mask %[[OK:.*]], %[[ST]], %[[NINF:.*]] unless %[[FULLT:.*]] : !tile.tile<128x64xi1>, !tile.tile<128x64xf32>
//  CHECK-NEXT:   %[[P:.*]] = tile.cast %[[M]]
//  CHECK-NEXT:   %[[O:.*]] = tgpu.wgmma_reg_a %[[P]], %[[K_SMEM]][%[[S]]], %{{.*}} : !tile.tile<128x64xf16>, !tgpu.smem<64x128xf16, swizzle = 128, stages = 2>, !tgpu.acc<128x128xf32>
//  CHECK-NEXT:   tgpu.store_fragment %[[OT:.*]][%[[B]], %[[H]], %[[R]], %[[C]]], %[[O]] : !tile.tensor<?x?x?x128xf16>, !tgpu.acc<128x128xf32>
// CHECK-GENERIC: "tgpu.wgmma"(%{{.*}}) <{b_kmajor}> :
// CHECK-GENERIC: "tgpu.turn"() <{kind = "pass"}> : () -> ()
func.func @tgpu_attention_ops(%K: !tile.tensor<?x?x?x128xf16> {tile.div16}, %OT: !tile.tensor<?x?x?x128xf16> {tile.div16}, %b: i32, %h: i32, %r: i32, %c: i32, %s: i32, %ok: !tile.tile<128x64xi1>, %full_tile: i1) {
  %q_smem = tgpu.alloc_smem : !tgpu.smem<128x128xf16, swizzle = 128, stages = 1>
  %k_smem = tgpu.alloc_smem : !tgpu.smem<64x128xf16, swizzle = 128, stages = 2>
  %full = tgpu.mbarrier_init {arrivals = 1 : i64} : !tgpu.mbarrier<2>
  tgpu.elect {
    tgpu.mbarrier_arrive_expect_tx %full[%s] {bytes = 16384 : i64} : !tgpu.mbarrier<2>
    tgpu.tma_load %K[%b, %h, %r, %c] -> %k_smem[%s], %full : !tile.tensor<?x?x?x128xf16>, !tgpu.smem<64x128xf16, swizzle = 128, stages = 2>, !tgpu.mbarrier<2>
  }
  %zero_f = arith.constant 0.000000e+00 : f32
  %ninf_f = arith.constant 0xff800000 : f32
  %z64 = tile.splat %zero_f : f32 -> !tile.tile<128x64xf32>
  %z128 = tile.splat %zero_f : f32 -> !tile.tile<128x128xf32>
  %ninf = tile.splat %ninf_f : f32 -> !tile.tile<128x64xf32>
  %s0 = tgpu.to_fragment %z64 : !tile.tile<128x64xf32> -> !tgpu.acc<128x64xf32>
  %o0 = tgpu.to_fragment %z128 : !tile.tile<128x128xf32> -> !tgpu.acc<128x128xf32>
  tgpu.turn {kind = "wait"}
  %sa = tgpu.wgmma %q_smem[%s], %k_smem[%s], %s0 {b_kmajor} : !tgpu.smem<128x128xf16, swizzle = 128, stages = 1>, !tgpu.smem<64x128xf16, swizzle = 128, stages = 2>, !tgpu.acc<128x64xf32>
  tgpu.turn {kind = "pass"}
  %st = tgpu.from_fragment %sa : !tgpu.acc<128x64xf32> -> !tile.tile<128x64xf32>
  %m = tgpu.mask %ok, %st, %ninf unless %full_tile : !tile.tile<128x64xi1>, !tile.tile<128x64xf32>
  %p = tile.cast %m : !tile.tile<128x64xf32> -> !tile.tile<128x64xf16>
  %o = tgpu.wgmma_reg_a %p, %k_smem[%s], %o0 : !tile.tile<128x64xf16>, !tgpu.smem<64x128xf16, swizzle = 128, stages = 2>, !tgpu.acc<128x128xf32>
  tgpu.store_fragment %OT[%b, %h, %r, %c], %o : !tile.tensor<?x?x?x128xf16>, !tgpu.acc<128x128xf32>
  func.return
}
