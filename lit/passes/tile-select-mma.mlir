// RUN: tilec-opt %s -p tile-select-mma{target=sm_90a} --split-input-file | filecheck %s
// RUN: tilec-opt %s -p tile-select-mma{target=sm_80} --split-input-file | filecheck %s --check-prefix=SM80

/// [Pattern: SelectMma] IN: f16 matmul, M % 64 == 0  OUT: mma = wgmma.m64nNk16. Why: sm_90a warpgroup MMA, one per 64 rows.
// CHECK-LABEL: func.func @wgmma_f16
//       CHECK:   tile.matmul %{{.*}} {mma = "wgmma.m64n128k16.f32.f16.f16"}
//  SM80-LABEL: func.func @wgmma_f16
//        SM80:   tile.matmul %{{.*}} {mma = "mma.sync.m16n8k16.row.col.f32.f16.f16.f32"}
func.func @wgmma_f16(%a: !tile.tile<128x64xf16>, %b: !tile.tile<64x128xf16>, %acc: !tile.tile<128x128xf32>) -> !tile.tile<128x128xf32> {
  %d = tile.matmul %a, %b, %acc : !tile.tile<128x64xf16>, !tile.tile<64x128xf16> -> !tile.tile<128x128xf32>
  func.return %d : !tile.tile<128x128xf32>
}

// -----

/// [Pattern: SelectMma] bf16 picks the bf16 wgmma; N may be any multiple of 8 up to 256.
// CHECK-LABEL: func.func @wgmma_bf16_n256
//       CHECK:   tile.matmul %{{.*}} {mma = "wgmma.m64n256k16.f32.bf16.bf16"}
func.func @wgmma_bf16_n256(%a: !tile.tile<64x64xbf16>, %b: !tile.tile<64x256xbf16>) -> !tile.tile<64x256xf32> {
  %d = tile.matmul %a, %b : !tile.tile<64x64xbf16>, !tile.tile<64x256xbf16> -> !tile.tile<64x256xf32>
  func.return %d : !tile.tile<64x256xf32>
}

// -----

/// [Pattern: SelectMma] Negative for wgmma: 32 rows are less than a warpgroup's 64, so mma.sync.
// CHECK-LABEL: func.func @negative_wgmma_32_rows
//       CHECK:   tile.matmul %{{.*}} {mma = "mma.sync.m16n8k16.row.col.f32.f16.f16.f32"}
func.func @negative_wgmma_32_rows(%a: !tile.tile<32x32xf16>, %b: !tile.tile<32x64xf16>) -> !tile.tile<32x64xf32> {
  %d = tile.matmul %a, %b : !tile.tile<32x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<32x64xf32>
  func.return %d : !tile.tile<32x64xf32>
}

// -----

/// [Pattern: SelectMma] Negative for the tensor cores: f32 operands run as CUDA-core FMAs.
// CHECK-LABEL: func.func @negative_f32_is_fma
//       CHECK:   tile.matmul %{{.*}} {mma = "fma.rn.f32"}
func.func @negative_f32_is_fma(%a: !tile.tile<64x64xf32>, %b: !tile.tile<64x64xf32>) -> !tile.tile<64x64xf32> {
  %d = tile.matmul %a, %b : !tile.tile<64x64xf32>, !tile.tile<64x64xf32> -> !tile.tile<64x64xf32>
  func.return %d : !tile.tile<64x64xf32>
}

// -----

/// [Pattern: SelectMma] Negative: batched (3-D) tiles are not wgmma operands.
// CHECK-LABEL: func.func @negative_batched
//       CHECK:   tile.matmul %{{.*}} {mma = "fma.rn.f32"}
func.func @negative_batched(%a: !tile.tile<2x64x64xf16>, %b: !tile.tile<2x64x64xf16>) -> !tile.tile<2x64x64xf32> {
  %d = tile.matmul %a, %b : !tile.tile<2x64x64xf16>, !tile.tile<2x64x64xf16> -> !tile.tile<2x64x64xf32>
  func.return %d : !tile.tile<2x64x64xf32>
}
