// RUN: tilec-opt %s -p tile-attention-wgmma --split-input-file | filecheck %s
// RUN: tilec-opt %s -p tile-attention-wgmma{num-stages=2} --split-input-file | filecheck %s --check-prefix=STAGES
// RUN: tilec-opt %s -p tile-attention-wgmma{ping-pong=true} --split-input-file | filecheck %s --check-prefix=PINGPONG

/// [Pattern: PipelineAttentionLoop] IN: S = matmul(q, k.T), register math, acc = matmul(p, v, acc) over K / V tiles  OUT: q by TMA once, K / V by TMA into a 3-stage ring refilled at the top of each iteration, S on wgmma from smem (K-major B), P V on wgmma with P from registers, acc carried as !tgpu.acc. Why: S, P and O never leave registers and the tensor cores read K and V straight from TMA's swizzled buffers.
// CHECK-LABEL: func.func @attention_loop
//  CHECK-SAME:   attributes {tgpu.num_warps = 8 : i64}
//       CHECK:   %[[Q_SMEM:.*]] = tgpu.alloc_smem : !tgpu.smem<128x128xf16, swizzle = 128, stages = 1>
//       CHECK:   %[[K_SMEM:.*]] = tgpu.alloc_smem : !tgpu.smem<64x128xf16, swizzle = 128, stages = 3>
//       CHECK:   %[[V_SMEM:.*]] = tgpu.alloc_smem : !tgpu.smem<64x128xf16, swizzle = 128, stages = 3>
//       CHECK:   %[[QBAR:.*]] = tgpu.mbarrier_init {arrivals = 1 : i64} : !tgpu.mbarrier<1>
//       CHECK:   %[[FULL:.*]] = tgpu.mbarrier_init {arrivals = 1 : i64} : !tgpu.mbarrier<3>
//       CHECK:   %[[EMPTY:.*]] = tgpu.mbarrier_init {arrivals = 2 : i64} : !tgpu.mbarrier<3>
//       CHECK:   tgpu.elect {
//  CHECK-NEXT:     tgpu.mbarrier_arrive_expect_tx %[[QBAR]][%{{.*}}] {bytes = 32768 : i64}
//  CHECK-NEXT:     tgpu.tma_load %[[Q:[a-zA-Z0-9_]+]][%[[R:[a-zA-Z0-9_]+]], %{{.*}}] -> %[[Q_SMEM]]
//       CHECK:   tgpu.mbarrier_wait %[[QBAR]]
//       CHECK:   %[[ITERS:.*]] = tile.floordiv
//       CHECK:   %[[S0:.*]] = tgpu.to_fragment %{{.*}} : !tile.tile<128x64xf32> -> !tgpu.acc<128x64xf32>
//       CHECK:   %[[ACC0:.*]] = tgpu.to_fragment %[[ACC_INIT:.*]] : !tile.tile<128x128xf32> -> !tgpu.acc<128x128xf32>
//       CHECK:   scf.for %[[JP:.*]] = %{{.*}} to %{{.*}} step
//       CHECK:       tgpu.tma_load %[[K:.*]][%{{.*}}, %{{.*}}] -> %[[K_SMEM]][%{{.*}}], %[[FULL]]
//  CHECK-NEXT:       tgpu.tma_load %[[V:.*]][%{{.*}}, %{{.*}}] -> %[[V_SMEM]][%{{.*}}], %[[FULL]]
//       CHECK:   %[[ACC:.*]], %[[L:.*]] = scf.for %[[J:.*]] = %{{.*}} to %[[ITERS]] step %{{.*}} iter_args(%[[A:.*]] = %[[ACC0]], %{{.*}} = %{{.*}}) -> (!tgpu.acc<128x128xf32>, !tile.tile<128x1xf32>)
//  CHECK-NEXT:     %[[STAGE:.*]], %[[PHASE:.*]] = tgpu.stage %[[J]]
//       CHECK:     scf.if %{{.*}} {
//       CHECK:         tgpu.mbarrier_wait %[[EMPTY]]
//       CHECK:     tgpu.mbarrier_wait %[[FULL]][%[[STAGE]]], %[[PHASE]]
//       CHECK:     %[[A_VIEW:.*]] = tgpu.from_fragment %[[A]]
//  CHECK-NEXT:     tgpu.wgmma_fence
//  CHECK-NEXT:     %[[SA:.*]] = tgpu.wgmma %[[Q_SMEM]][%{{.*}}], %[[K_SMEM]][%[[STAGE]]], %[[S0]] {b_kmajor}
//  CHECK-NEXT:     tgpu.wgmma_commit
//  CHECK-NEXT:     tgpu.wgmma_wait
//  CHECK-NEXT:     %[[S:.*]] = tgpu.from_fragment %[[SA]] : !tgpu.acc<128x64xf32> -> !tile.tile<128x64xf32>
//  CHECK-NEXT:     %[[P:.*]] = tile.exp %[[S]]
//       CHECK:     %[[PH:.*]] = tile.cast %[[P]]
//  CHECK-NEXT:     %[[A_F:.*]] = tgpu.to_fragment %[[A_VIEW]]
//  CHECK-NEXT:     tgpu.wgmma_fence
//  CHECK-NEXT:     %[[O:.*]] = tgpu.wgmma_reg_a %[[PH]], %[[V_SMEM]][%[[STAGE]]], %[[A_F]]
//  CHECK-NEXT:     tgpu.wgmma_commit
//  CHECK-NEXT:     tgpu.wgmma_wait
//  CHECK-NEXT:     tgpu.mbarrier_arrive %[[EMPTY]][%[[STAGE]]]
//  CHECK-NEXT:     scf.yield %[[O]], %{{.*}} : !tgpu.acc<128x128xf32>, !tile.tile<128x1xf32>
//       CHECK:   %[[ACC_T:.*]] = tgpu.from_fragment %[[ACC]] : !tgpu.acc<128x128xf32> -> !tile.tile<128x128xf32>
//  CHECK-NEXT:   tile.store %{{.*}}[%[[R]], %{{.*}}], %[[ACC_T]]
//   CHECK-NOT:   tile.matmul
// STAGES-LABEL: func.func @attention_loop
//       STAGES:   tgpu.alloc_smem : !tgpu.smem<64x128xf16, swizzle = 128, stages = 2>
// PINGPONG-LABEL: func.func @attention_loop
//       PINGPONG:   tgpu.turn {kind = "start"}
//       PINGPONG:   scf.for %{{.*}} iter_args
//       PINGPONG:     tgpu.turn {kind = "wait"}
//  PINGPONG-NEXT:     tgpu.wgmma_fence
//  PINGPONG-NEXT:     tgpu.wgmma
//  PINGPONG-NEXT:     tgpu.wgmma_commit
//  PINGPONG-NEXT:     tgpu.turn {kind = "pass"}
//       PINGPONG:     tgpu.turn {kind = "wait"}
//  PINGPONG-NEXT:     tgpu.wgmma_fence
//  PINGPONG-NEXT:     tgpu.wgmma_reg_a
//  PINGPONG-NEXT:     tgpu.wgmma_commit
//  PINGPONG-NEXT:     tgpu.turn {kind = "pass"}
//       PINGPONG:   tgpu.turn {kind = "finish"}
func.func @attention_loop(%Q: !tile.tensor<?x?xf16> {tile.div16}, %K: !tile.tensor<?x?xf16> {tile.div16}, %V: !tile.tensor<?x?xf16> {tile.div16}, %O: !tile.tensor<?x?xf32>, %r: i32, %n: i32) {
  %c0 = arith.constant 0 : i32
  %c64 = arith.constant 64 : i32
  %zf = arith.constant 0.000000e+00 : f32
  %q = tile.load %Q[%r, %c0] : !tile.tensor<?x?xf16> -> !tile.tile<128x128xf16>
  %acc0 = tile.splat %zf : f32 -> !tile.tile<128x128xf32>
  %l0 = tile.splat %zf : f32 -> !tile.tile<128x1xf32>
  %acc, %l = scf.for %start = %c0 to %n step %c64 iter_args(%a = %acc0, %li = %l0) -> (!tile.tile<128x128xf32>, !tile.tile<128x1xf32>) : i32 {
    %k = tile.load %K[%start, %c0] : !tile.tensor<?x?xf16> -> !tile.tile<64x128xf16>
    %kt = tile.permute %k {perm = array<i64: 1, 0>} : !tile.tile<64x128xf16> -> !tile.tile<128x64xf16>
    %s = tile.matmul %q, %kt {mma = "wgmma.m64n64k16.f32.f16.f16"} : !tile.tile<128x128xf16>, !tile.tile<128x64xf16> -> !tile.tile<128x64xf32>
    %p = tile.exp %s : !tile.tile<128x64xf32>
    %rs = tile.reduce "sum" %p {axis = 1 : i64, keepdims = true} : !tile.tile<128x64xf32> -> !tile.tile<128x1xf32>
    %l1 = tile.add %li, %rs : !tile.tile<128x1xf32>
    %ph = tile.cast %p : !tile.tile<128x64xf32> -> !tile.tile<128x64xf16>
    %v = tile.load %V[%start, %c0] : !tile.tensor<?x?xf16> -> !tile.tile<64x128xf16>
    %o = tile.matmul %ph, %v, %a {mma = "wgmma.m64n128k16.f32.f16.f16"} : !tile.tile<128x64xf16>, !tile.tile<64x128xf16> -> !tile.tile<128x128xf32>
    scf.yield %o, %l1 : !tile.tile<128x128xf32>, !tile.tile<128x1xf32>
  }
  tile.store %O[%r, %c0], %acc : !tile.tensor<?x?xf32>, !tile.tile<128x128xf32>
  func.return
}


// -----

/// [Pattern: PipelineAttentionLoop, masks and epilogue] IN: tile.select on `start + arange(64) < n`; O stored to a {tile.div16} tensor  OUT: tgpu.mask unless max(start + arange) < n, computed from scalar bounds each iteration; tgpu.store_fragment of O. Why: only the last key tile needs the mask, and O goes out by TMA from its registers.
// CHECK-LABEL: func.func @mask_on_boundary_tiles_only
//       CHECK:     %[[START:start]] = tile.add
//       CHECK:     %[[S:s]] = tgpu.from_fragment
//       CHECK:     %[[LO:.*]] = arith.constant 0 : i32
//  CHECK-NEXT:     %[[HI:.*]] = arith.constant 63 : i32
//  CHECK-NEXT:     %{{.*}} = tile.add %[[START]], %[[LO]] : i32
//  CHECK-NEXT:     %[[MAX:.*]] = tile.add %[[START]], %[[HI]] : i32
//  CHECK-NEXT:     %[[FULL:.*]] = tile.cmp "lt" %[[MAX]], %[[N:.*]] : i32 -> i1
//  CHECK-NEXT:     %[[SM:.*]] = tgpu.mask %[[OKB:[a-z0-9_]+]], %[[S]], %[[NINF:[a-z0-9_]+]] unless %[[FULL]] : !tile.tile<128x64xi1>, !tile.tile<128x64xf32>
//  CHECK-NEXT:     %{{.*}} = tile.exp %[[SM]]
//       CHECK:   %[[ACC:.*]] = tgpu.from_fragment %{{.*}} : !tgpu.acc<128x128xf32> -> !tile.tile<128x128xf32>
//  CHECK-NEXT:   %[[ACC_F:.*]] = tgpu.to_fragment %[[ACC]]
//  CHECK-NEXT:   tgpu.store_fragment %{{.*}}[%{{.*}}, %{{.*}}], %[[ACC_F]] : !tile.tensor<?x?xf32>, !tgpu.acc<128x128xf32>
//   CHECK-NOT:   tile.select
//   CHECK-NOT:   tile.store
func.func @mask_on_boundary_tiles_only(%Q: !tile.tensor<?x?xf16> {tile.div16}, %K: !tile.tensor<?x?xf16> {tile.div16}, %V: !tile.tensor<?x?xf16> {tile.div16}, %O: !tile.tensor<?x?xf32> {tile.div16}, %r: i32, %n: i32) {
  %c0 = arith.constant 0 : i32
  %c64 = arith.constant 64 : i32
  %zf = arith.constant 0.000000e+00 : f32
  %ar0 = tile.arange : !tile.tile<64xi32>
  %ninf_c = arith.constant 0xff800000 : f32
  %q = tile.load %Q[%r, %c0] : !tile.tensor<?x?xf16> -> !tile.tile<128x128xf16>
  %acc0 = tile.splat %zf : f32 -> !tile.tile<128x128xf32>
  %l0 = tile.splat %zf : f32 -> !tile.tile<128x1xf32>
  %acc, %l = scf.for %start = %c0 to %n step %c64 iter_args(%a = %acc0, %li = %l0) -> (!tile.tile<128x128xf32>, !tile.tile<128x1xf32>) : i32 {
    %k = tile.load %K[%start, %c0] : !tile.tensor<?x?xf16> -> !tile.tile<64x128xf16>
    %kt = tile.permute %k {perm = array<i64: 1, 0>} : !tile.tile<64x128xf16> -> !tile.tile<128x64xf16>
    %s = tile.matmul %q, %kt {mma = "wgmma.m64n64k16.f32.f16.f16"} : !tile.tile<128x128xf16>, !tile.tile<128x64xf16> -> !tile.tile<128x64xf32>
    %st = tile.splat %start : i32 -> !tile.tile<1x64xi32>
    %ar = tile.reshape %ar0 : !tile.tile<64xi32> -> !tile.tile<1x64xi32>
    %cols = tile.add %st, %ar : !tile.tile<1x64xi32>
    %nn = tile.splat %n : i32 -> !tile.tile<1x64xi32>
    %ok = tile.cmp "lt" %cols, %nn : !tile.tile<1x64xi32> -> !tile.tile<1x64xi1>
    %okb = tile.broadcast %ok : !tile.tile<1x64xi1> -> !tile.tile<128x64xi1>
    %ninf = tile.splat %ninf_c : f32 -> !tile.tile<128x64xf32>
    %sm = tile.select %okb, %s, %ninf : !tile.tile<128x64xi1>, !tile.tile<128x64xf32>
    %p = tile.exp %sm : !tile.tile<128x64xf32>
    %rs = tile.reduce "sum" %p {axis = 1 : i64, keepdims = true} : !tile.tile<128x64xf32> -> !tile.tile<128x1xf32>
    %l1 = tile.add %li, %rs : !tile.tile<128x1xf32>
    %ph = tile.cast %p : !tile.tile<128x64xf32> -> !tile.tile<128x64xf16>
    %v = tile.load %V[%start, %c0] : !tile.tensor<?x?xf16> -> !tile.tile<64x128xf16>
    %o = tile.matmul %ph, %v, %a {mma = "wgmma.m64n128k16.f32.f16.f16"} : !tile.tile<128x64xf16>, !tile.tile<64x128xf16> -> !tile.tile<128x128xf32>
    scf.yield %o, %l1 : !tile.tile<128x128xf32>, !tile.tile<128x1xf32>
  }
  tile.store %O[%r, %c0], %acc : !tile.tensor<?x?xf32>, !tile.tile<128x128xf32>
  func.return
}

// -----

/// [Negative] IN: the loop also loads a bias tile  OUT: unchanged (both matmuls keep their records for the later passes). Why: only register math on S may sit between the two matmuls.
// CHECK-LABEL: func.func @negative_extra_load
//   CHECK-NOT:   tgpu.
//       CHECK:   tile.matmul
//       CHECK:   tile.matmul
func.func @negative_extra_load(%Q: !tile.tensor<?x?xf16> {tile.div16}, %K: !tile.tensor<?x?xf16> {tile.div16}, %V: !tile.tensor<?x?xf16> {tile.div16}, %O: !tile.tensor<?x?xf32>, %r: i32, %n: i32) {
  %c0 = arith.constant 0 : i32
  %c64 = arith.constant 64 : i32
  %zf = arith.constant 0.000000e+00 : f32
  %q = tile.load %Q[%r, %c0] : !tile.tensor<?x?xf16> -> !tile.tile<128x128xf16>
  %acc0 = tile.splat %zf : f32 -> !tile.tile<128x128xf32>
  %l0 = tile.splat %zf : f32 -> !tile.tile<128x1xf32>
  %acc, %l = scf.for %start = %c0 to %n step %c64 iter_args(%a = %acc0, %li = %l0) -> (!tile.tile<128x128xf32>, !tile.tile<128x1xf32>) : i32 {
    %k = tile.load %K[%start, %c0] : !tile.tensor<?x?xf16> -> !tile.tile<64x128xf16>
    %kt = tile.permute %k {perm = array<i64: 1, 0>} : !tile.tile<64x128xf16> -> !tile.tile<128x64xf16>
    %s = tile.matmul %q, %kt {mma = "wgmma.m64n64k16.f32.f16.f16"} : !tile.tile<128x128xf16>, !tile.tile<128x64xf16> -> !tile.tile<128x64xf32>
    %bias = tile.load %O[%start, %c0] : !tile.tensor<?x?xf32> -> !tile.tile<128x64xf32>
    %sb = tile.add %s, %bias : !tile.tile<128x64xf32>
    %p = tile.exp %sb : !tile.tile<128x64xf32>
    %rs = tile.reduce "sum" %p {axis = 1 : i64, keepdims = true} : !tile.tile<128x64xf32> -> !tile.tile<128x1xf32>
    %l1 = tile.add %li, %rs : !tile.tile<128x1xf32>
    %ph = tile.cast %p : !tile.tile<128x64xf32> -> !tile.tile<128x64xf16>
    %v = tile.load %V[%start, %c0] : !tile.tensor<?x?xf16> -> !tile.tile<64x128xf16>
    %o = tile.matmul %ph, %v, %a {mma = "wgmma.m64n128k16.f32.f16.f16"} : !tile.tile<128x64xf16>, !tile.tile<64x128xf16> -> !tile.tile<128x128xf32>
    scf.yield %o, %l1 : !tile.tile<128x128xf32>, !tile.tile<128x1xf32>
  }
  tile.store %O[%r, %c0], %acc : !tile.tensor<?x?xf32>, !tile.tile<128x128xf32>
  func.return
}
