// RUN: tilec-opt %s -p tile-w4a16{target=sm_90a} --split-input-file | filecheck %s
// RUN: tilec-opt %s -p "tile-w4a16{target=sm_80 num-stages=6}" --split-input-file | filecheck %s --check-prefix=SM80

/// [Pattern: RewriteW4A16Loop] IN: K loop of load X / load WQ, WS / dequantize to f16 / transpose / matmul-accumulate  OUT: one w4a16.mma_loop over the same bounds. Why: no FP4 tensor cores before sm_100a; the weights are decoded in registers.
// CHECK-LABEL: func.func @w4a16_mx_loop
//       CHECK:   %[[ACC:.*]] = tile.splat
//       CHECK:   %[[RES:.*]] = w4a16.mma_loop %[[X:.*]][%[[XR:.*]]], %[[WQ:.*]], %[[WS:.*]][%[[WR:.*]]], %[[LB:.*]] to %[[UB:.*]], %[[ACC]] {bk = 128 : i64, block = 32 : i64, stages = 4 : i64}
//   CHECK-NOT:   scf.for
//   CHECK-NOT:   tile.dequantize
//       CHECK:   tile.store %[[Y:.*]][%[[XR]], %[[WR]]], %[[RES]]
//        SM80:   w4a16.mma_loop {{.*}} {bk = 128 : i64, block = 32 : i64, stages = 6 : i64}
func.func @w4a16_mx_loop(%X: !tile.tensor<?x?xf16>, %WQ: !tile.tensor<?x?xf4E2M1FN>, %WS: !tile.tensor<?x?xf8E8M0FNU>, %Y: !tile.tensor<?x?xf32>, %xr: i32, %wr: i32, %ub: i32) {
  %z = arith.constant 0.000000e+00 : f32
  %acc = tile.splat %z : f32 -> !tile.tile<16x64xf32>
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %c128 = arith.constant 128 : i32
  %c4 = arith.constant 4 : i32
  %r = scf.for %k = %c0 to %ub step %c1 iter_args(%a = %acc) -> (!tile.tile<16x64xf32>) : i32 {
    %o = tile.mul %k, %c128 : i32
    %x = tile.load %X[%xr, %o] : !tile.tensor<?x?xf16> -> !tile.tile<16x128xf16>
    %q = tile.load %WQ[%wr, %o] : !tile.tensor<?x?xf4E2M1FN> -> !tile.tile<64x128xf4E2M1FN>
    %so = tile.mul %k, %c4 : i32
    %s = tile.load %WS[%wr, %so] : !tile.tensor<?x?xf8E8M0FNU> -> !tile.tile<64x4xf8E8M0FNU>
    %w = tile.dequantize %q scale %s block 32 : !tile.tile<64x128xf4E2M1FN>, !tile.tile<64x4xf8E8M0FNU> -> !tile.tile<64x128xf16>
    %t = tile.permute %w {perm = array<i64: 1, 0>} : !tile.tile<64x128xf16> -> !tile.tile<128x64xf16>
    %d = tile.matmul %x, %t, %a : !tile.tile<16x128xf16>, !tile.tile<128x64xf16> -> !tile.tile<16x64xf32>
    scf.yield %d : !tile.tile<16x64xf32>
  }
  tile.store %Y[%xr, %wr], %r : !tile.tensor<?x?xf32>, !tile.tile<16x64xf32>
  func.return
}

// -----

/// [Pattern: RewriteW4A16Loop] NV scales (e4m3, block 16), bf16 activations, 8 tokens x 32 rows, bounds from arguments.
// CHECK-LABEL: func.func @w4a16_nv_bf16
//       CHECK:   w4a16.mma_loop {{.*}} {bk = 256 : i64, block = 16 : i64, stages = 4 : i64} : !tile.tensor<?x?xbf16>, !tile.tensor<?x?xf4E2M1FN>, !tile.tensor<?x?xf8E4M3FN>, !tile.tile<8x32xf32>
func.func @w4a16_nv_bf16(%X: !tile.tensor<?x?xbf16>, %WQ: !tile.tensor<?x?xf4E2M1FN>, %WS: !tile.tensor<?x?xf8E4M3FN>, %acc: !tile.tile<8x32xf32>, %lb: i32, %ub: i32) -> !tile.tile<8x32xf32> {
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %c256 = arith.constant 256 : i32
  %c16 = arith.constant 16 : i32
  %r = scf.for %k = %lb to %ub step %c1 iter_args(%a = %acc) -> (!tile.tile<8x32xf32>) : i32 {
    %o = tile.mul %k, %c256 : i32
    %x = tile.load %X[%c0, %o] : !tile.tensor<?x?xbf16> -> !tile.tile<8x256xbf16>
    %q = tile.load %WQ[%c0, %o] : !tile.tensor<?x?xf4E2M1FN> -> !tile.tile<32x256xf4E2M1FN>
    %so = tile.mul %k, %c16 : i32
    %s = tile.load %WS[%c0, %so] : !tile.tensor<?x?xf8E4M3FN> -> !tile.tile<32x16xf8E4M3FN>
    %w = tile.dequantize %q scale %s block 16 : !tile.tile<32x256xf4E2M1FN>, !tile.tile<32x16xf8E4M3FN> -> !tile.tile<32x256xbf16>
    %t = tile.permute %w {perm = array<i64: 1, 0>} : !tile.tile<32x256xbf16> -> !tile.tile<256x32xbf16>
    %d = tile.matmul %x, %t, %a : !tile.tile<8x256xbf16>, !tile.tile<256x32xbf16> -> !tile.tile<8x32xf32>
    scf.yield %d : !tile.tile<8x32xf32>
  }
  func.return %r : !tile.tile<8x32xf32>
}

// -----

/// [Pattern: RewriteW4A16Loop] Negative: dequantized to f32 (not the activations' f16), so the matmul is not W4A16.
// CHECK-LABEL: func.func @negative_dequantize_to_f32
//       CHECK:   scf.for
//       CHECK:     tile.dequantize
//   CHECK-NOT:   w4a16.mma_loop
func.func @negative_dequantize_to_f32(%X: !tile.tensor<?x?xf32>, %WQ: !tile.tensor<?x?xf4E2M1FN>, %WS: !tile.tensor<?x?xf8E8M0FNU>, %acc: !tile.tile<16x64xf32>, %ub: i32) -> !tile.tile<16x64xf32> {
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %c128 = arith.constant 128 : i32
  %c4 = arith.constant 4 : i32
  %r = scf.for %k = %c0 to %ub step %c1 iter_args(%a = %acc) -> (!tile.tile<16x64xf32>) : i32 {
    %o = tile.mul %k, %c128 : i32
    %x = tile.load %X[%c0, %o] : !tile.tensor<?x?xf32> -> !tile.tile<16x128xf32>
    %q = tile.load %WQ[%c0, %o] : !tile.tensor<?x?xf4E2M1FN> -> !tile.tile<64x128xf4E2M1FN>
    %so = tile.mul %k, %c4 : i32
    %s = tile.load %WS[%c0, %so] : !tile.tensor<?x?xf8E8M0FNU> -> !tile.tile<64x4xf8E8M0FNU>
    %w = tile.dequantize %q scale %s block 32 : !tile.tile<64x128xf4E2M1FN>, !tile.tile<64x4xf8E8M0FNU> -> !tile.tile<64x128xf32>
    %t = tile.permute %w {perm = array<i64: 1, 0>} : !tile.tile<64x128xf32> -> !tile.tile<128x64xf32>
    %d = tile.matmul %x, %t, %a : !tile.tile<16x128xf32>, !tile.tile<128x64xf32> -> !tile.tile<16x64xf32>
    scf.yield %d : !tile.tile<16x64xf32>
  }
  func.return %r : !tile.tile<16x64xf32>
}

// -----

/// [Pattern: RewriteW4A16Loop] Negative: the weight row offset changes with k, so the loop is not a K loop of one weight tile.
// CHECK-LABEL: func.func @negative_row_depends_on_k
//       CHECK:   scf.for
//   CHECK-NOT:   w4a16.mma_loop
func.func @negative_row_depends_on_k(%X: !tile.tensor<?x?xf16>, %WQ: !tile.tensor<?x?xf4E2M1FN>, %WS: !tile.tensor<?x?xf8E8M0FNU>, %acc: !tile.tile<16x64xf32>, %ub: i32) -> !tile.tile<16x64xf32> {
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %c128 = arith.constant 128 : i32
  %c4 = arith.constant 4 : i32
  %r = scf.for %k = %c0 to %ub step %c1 iter_args(%a = %acc) -> (!tile.tile<16x64xf32>) : i32 {
    %o = tile.mul %k, %c128 : i32
    %x = tile.load %X[%c0, %o] : !tile.tensor<?x?xf16> -> !tile.tile<16x128xf16>
    %q = tile.load %WQ[%k, %o] : !tile.tensor<?x?xf4E2M1FN> -> !tile.tile<64x128xf4E2M1FN>
    %so = tile.mul %k, %c4 : i32
    %s = tile.load %WS[%k, %so] : !tile.tensor<?x?xf8E8M0FNU> -> !tile.tile<64x4xf8E8M0FNU>
    %w = tile.dequantize %q scale %s block 32 : !tile.tile<64x128xf4E2M1FN>, !tile.tile<64x4xf8E8M0FNU> -> !tile.tile<64x128xf16>
    %t = tile.permute %w {perm = array<i64: 1, 0>} : !tile.tile<64x128xf16> -> !tile.tile<128x64xf16>
    %d = tile.matmul %x, %t, %a : !tile.tile<16x128xf16>, !tile.tile<128x64xf16> -> !tile.tile<16x64xf32>
    scf.yield %d : !tile.tile<16x64xf32>
  }
  func.return %r : !tile.tile<16x64xf32>
}
