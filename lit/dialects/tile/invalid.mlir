// RUN: tilec-opt %s --split-input-file --verify-diagnostics --parsing-diagnostics | filecheck %s

/// One case per verifier error of dialects/tile.py (and per parse error that a type
/// variable in an assembly format turns a verifier error into).

/// TileType.verify: every dimension must be positive (raised while parsing the type).
func.func @tile_dim_zero(%x: !tile.tile<0x4xf32>) {
  func.return
}
// CHECK: tile dimensions must be positive, got [0, 4]

// -----

func.func @tile_idx_negative_axis() {
  %i = tile.tile_idx -1
  func.return
}
// CHECK: error: 'tile.tile_idx' op grid axis must be >= 0

// -----

func.func @dim_axis_out_of_range(%X: !tile.tensor<?x?xf32>) {
  %n = tile.dim %X 2 : !tile.tensor<?x?xf32>
  func.return
}
// CHECK: error: 'tile.dim' op axis 2 is out of range for a rank-2 tensor

// -----

func.func @load_offset_count(%X: !tile.tensor<?x?xf32>, %r: i32) {
  %t = tile.load %X[%r] : !tile.tensor<?x?xf32> -> !tile.tile<64x64xf32>
  func.return
}
// CHECK: error: 'tile.load' op a rank-2 tensor needs 2 offsets, got 1

// -----

func.func @load_tile_rank(%X: !tile.tensor<?x?xf32>, %r: i32) {
  %t = tile.load %X[%r, %r] : !tile.tensor<?x?xf32> -> !tile.tile<64xf32>
  func.return
}
// CHECK: error: 'tile.load' op a rank-2 tensor needs a rank-2 tile, got shape [64]

// -----

func.func @load_element_type(%X: !tile.tensor<?x?xf32>, %r: i32) {
  %t = tile.load %X[%r, %r] : !tile.tensor<?x?xf32> -> !tile.tile<64x64xf16>
  func.return
}
// CHECK: error: 'tile.load' op loaded tile has element type f16, the tensor holds f32

// -----

func.func @store_offset_count(%X: !tile.tensor<?x?xf32>, %r: i32, %t: !tile.tile<64x64xf32>) {
  tile.store %X[%r], %t : !tile.tensor<?x?xf32>, !tile.tile<64x64xf32>
  func.return
}
// CHECK: error: 'tile.store' op a rank-2 tensor needs 2 offsets, got 1

// -----

func.func @store_tile_rank(%X: !tile.tensor<?x?xf32>, %r: i32, %t: !tile.tile<64xf32>) {
  tile.store %X[%r, %r], %t : !tile.tensor<?x?xf32>, !tile.tile<64xf32>
  func.return
}
// CHECK: error: 'tile.store' op a rank-2 tensor needs a rank-2 tile, got shape [64]

// -----

func.func @store_element_type(%X: !tile.tensor<?x?xf32>, %r: i32, %t: !tile.tile<64x64xf16>) {
  tile.store %X[%r, %r], %t : !tile.tensor<?x?xf32>, !tile.tile<64x64xf16>
  func.return
}
// CHECK: error: 'tile.store' op stored tile has element type f16, the tensor holds f32

// -----

func.func @store_mode(%X: !tile.tensor<?x?xf32>, %r: i32, %t: !tile.tile<64x64xf32>) {
  tile.store %X[%r, %r], %t {mode = "atomic_max"} : !tile.tensor<?x?xf32>, !tile.tile<64x64xf32>
  func.return
}
// CHECK: error: 'tile.store' op store mode must be one of ('store', 'atomic_add'), got 'atomic_max'

// -----

func.func @splat_of_tile(%t: !tile.tile<4xf32>) {
  %s = tile.splat %t : !tile.tile<4xf32> -> !tile.tile<4x4xf32>
  func.return
}
// CHECK: error: tile.splat takes a scalar; use tile.broadcast for tiles

// -----

func.func @splat_element_type(%x: f32) {
  %s = tile.splat %x : f32 -> !tile.tile<4xf16>
  func.return
}
// CHECK: error: 'tile.splat' op splat of f32 cannot make a tile of f16

// -----

func.func @broadcast_shape(%t: !tile.tile<2x64xf32>) {
  %b = tile.broadcast %t : !tile.tile<2x64xf32> -> !tile.tile<32x64xf32>
  func.return
}
// CHECK: error: 'tile.broadcast' op cannot broadcast shape [2, 64] to [32, 64]

// -----

func.func @broadcast_element_type(%t: !tile.tile<1x64xf32>) {
  %b = tile.broadcast %t : !tile.tile<1x64xf32> -> !tile.tile<32x64xf16>
  func.return
}
// CHECK: error: tile.broadcast cannot change the element type

// -----

func.func @reshape_size(%t: !tile.tile<64xf32>) {
  %r = tile.reshape %t : !tile.tile<64xf32> -> !tile.tile<32x4xf32>
  func.return
}
// CHECK: error: 'tile.reshape' op cannot reshape [64] to [32, 4]: sizes differ

// -----

func.func @permute_not_a_permutation(%t: !tile.tile<64x32xf32>) {
  %p = tile.permute %t {perm = array<i64: 0, 0>} : !tile.tile<64x32xf32> -> !tile.tile<64x64xf32>
  func.return
}
// CHECK: error: 'tile.permute' op [0, 0] is not a permutation of the 2 axes of a [64, 32] tile

// -----

func.func @permute_result_shape(%t: !tile.tile<64x32xf32>) {
  %p = tile.permute %t {perm = array<i64: 1, 0>} : !tile.tile<64x32xf32> -> !tile.tile<64x32xf32>
  func.return
}
// CHECK: error: 'tile.permute' op permuted shape is [32, 64], result says [64, 32]

// -----

func.func @arange_2d() {
  %a = tile.arange : !tile.tile<4x4xi32>
  func.return
}
// CHECK: error: tile.arange makes a 1-D tile of i32

// -----

func.func @binary_on_tensor(%X: !tile.tensor<?xf32>) {
  %s = tile.add %X, %X : !tile.tensor<?xf32>
  func.return
}
// CHECK: error: tile.add works on tiles and scalars, not on a global tensor

// -----

func.func @unary_on_tensor(%X: !tile.tensor<?xf32>) {
  %s = tile.neg %X : !tile.tensor<?xf32>
  func.return
}
// CHECK: error: tile.neg works on tiles and scalars, not on a global tensor

// -----

func.func @float_only_unary_on_int(%t: !tile.tile<4xi32>) {
  %s = tile.exp %t : !tile.tile<4xi32>
  func.return
}
// CHECK: error: tile.exp needs floating-point operands, got !tile.tile<4xi32>

// -----

/// Generic form: the IRDL type variable T of elementwise ops rejects mixed operand types.
func.func @binary_mixed_types(%a: !tile.tile<4xf32>, %b: !tile.tile<4xf16>) {
  %s = "tile.add"(%a, %b) : (!tile.tile<4xf32>, !tile.tile<4xf16>) -> !tile.tile<4xf32>
  func.return
}
// CHECK: error: 'tile.add' op operand 'rhs' at position 1 does not verify:
// CHECK-NEXT: attribute !tile.tile<4xf32> expected from variable 'T', but got !tile.tile<4xf16>

// -----

func.func @cmp_predicate(%a: !tile.tile<4xi32>) {
  %m = tile.cmp "lte" %a, %a : !tile.tile<4xi32> -> !tile.tile<4xi1>
  func.return
}
// CHECK: error: 'tile.cmp' op unknown comparison 'lte'; expected one of ('eq', 'ne', 'lt', 'le', 'gt', 'ge')

// -----

func.func @cmp_result_type(%a: !tile.tile<4xi32>) {
  %m = tile.cmp "lt" %a, %a : !tile.tile<4xi32> -> !tile.tile<4xi32>
  func.return
}
// CHECK: error: 'tile.cmp' op comparison result must be i1 of the operands' shape

// -----

func.func @cmp_on_tensor(%X: !tile.tensor<?xi32>) {
  %m = tile.cmp "lt" %X, %X : !tile.tensor<?xi32> -> !tile.tensor<?xi1>
  func.return
}
// CHECK: error: tile.cmp works on tiles and scalars, not on a global tensor

// -----

func.func @select_condition(%m: !tile.tile<4xi32>, %a: !tile.tile<4xf32>) {
  %s = tile.select %m, %a, %a : !tile.tile<4xi32>, !tile.tile<4xf32>
  func.return
}
// CHECK: error: 'tile.select' op condition must be i1 of the values' shape, got !tile.tile<4xi32>

// -----

func.func @cast_shape(%a: !tile.tile<4xf32>) {
  %h = tile.cast %a : !tile.tile<4xf32> -> !tile.tile<8xf16>
  func.return
}
// CHECK: error: tile.cast changes only the element type, not the shape

// -----

func.func @cast_tile_to_scalar(%a: !tile.tile<1xf32>) {
  %h = tile.cast %a : !tile.tile<1xf32> -> f16
  func.return
}
// CHECK: error: tile.cast changes only the element type, not the shape

// -----

func.func @matmul_rank(%a: !tile.tile<32xf16>, %b: !tile.tile<32x64xf16>) {
  %c = tile.matmul %a, %b : !tile.tile<32xf16>, !tile.tile<32x64xf16> -> !tile.tile<64xf32>
  func.return
}
// CHECK: error: 'tile.matmul' op matmul needs tiles of rank >= 2, got shapes [32] and [32, 64]

// -----

func.func @matmul_inner_dims(%a: !tile.tile<64x32xf16>, %b: !tile.tile<16x64xf16>) {
  %c = tile.matmul %a, %b : !tile.tile<64x32xf16>, !tile.tile<16x64xf16> -> !tile.tile<64x64xf32>
  func.return
}
// CHECK: error: 'tile.matmul' op matmul shapes [64, 32] and [16, 64] do not agree: inner dimensions 32 and 16 differ

// -----

func.func @matmul_batch(%a: !tile.tile<2x64x32xf16>, %b: !tile.tile<3x32x64xf16>) {
  %c = tile.matmul %a, %b : !tile.tile<2x64x32xf16>, !tile.tile<3x32x64xf16> -> !tile.tile<2x64x64xf32>
  func.return
}
// CHECK: error: 'tile.matmul' op shapes [2] and [3] cannot be broadcast together

// -----

func.func @matmul_result_shape(%a: !tile.tile<64x32xf16>, %b: !tile.tile<32x64xf16>) {
  %c = tile.matmul %a, %b : !tile.tile<64x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<64x32xf32>
  func.return
}
// CHECK: error: 'tile.matmul' op matmul result shape is [64, 64], result type says [64, 32]

// -----

func.func @matmul_operand_dtypes(%a: !tile.tile<64x32xf16>, %b: !tile.tile<32x64xbf16>) {
  %c = tile.matmul %a, %b : !tile.tile<64x32xf16>, !tile.tile<32x64xbf16> -> !tile.tile<64x64xf32>
  func.return
}
// CHECK: error: 'tile.matmul' op matmul operands must share a dtype, got f16 and bf16

// -----

/// Generic form: the ACC type variable ties acc to the result type.
func.func @matmul_acc_type(%a: !tile.tile<64x32xf16>, %b: !tile.tile<32x64xf16>, %acc: !tile.tile<64x64xf16>) {
  %c = "tile.matmul"(%a, %b, %acc) : (!tile.tile<64x32xf16>, !tile.tile<32x64xf16>, !tile.tile<64x64xf16>) -> !tile.tile<64x64xf32>
  func.return
}
// CHECK: error: 'tile.matmul' op result 'result' at position 0 does not verify:
// CHECK-NEXT: attribute !tile.tile<64x64xf16> expected from variable 'ACC', but got !tile.tile<64x64xf32>

// -----

/// fp4 tensors are packed two per byte: a tile of one spans whole bytes.
func.func @load_fp4_odd_innermost(%X: !tile.tensor<?x?xf4E2M1FN>, %r: i32) {
  %t = tile.load %X[%r, %r] : !tile.tensor<?x?xf4E2M1FN> -> !tile.tile<64x33xf4E2M1FN>
  func.return
}
// CHECK: error: 'tile.load' op a float4_e2m1fn tile of a tensor needs an even innermost dim (two elements per byte), got shape [64, 33]

// -----

func.func @quantize_block_does_not_divide(%x: !tile.tile<64x48xf32>) {
  %q, %s = tile.quantize %x block 32 : !tile.tile<64x48xf32> -> !tile.tile<64x48xf4E2M1FN>, !tile.tile<64x1xf8E8M0FNU>
  func.return
}
// CHECK: error: 'tile.quantize' op block 32 does not divide the last dim 48 of a [64, 48] tile

// -----

func.func @quantize_block_positive(%x: !tile.tile<64x64xf32>) {
  %q, %s = tile.quantize %x block 0 : !tile.tile<64x64xf32> -> !tile.tile<64x64xf4E2M1FN>, !tile.tile<64x2xf8E8M0FNU>
  func.return
}
// CHECK: error: 'tile.quantize' op the scale block must be positive, got 0

// -----

func.func @quantize_scale_shape(%x: !tile.tile<64x64xf32>) {
  %q, %s = tile.quantize %x block 32 : !tile.tile<64x64xf32> -> !tile.tile<64x64xf4E2M1FN>, !tile.tile<64x4xf8E8M0FNU>
  func.return
}
// CHECK: error: 'tile.quantize' op scales of a [64, 64] tile with block 32 must have shape [64, 2], got [64, 4]

// -----

func.func @quantize_result_shape(%x: !tile.tile<64x64xf32>) {
  %q, %s = tile.quantize %x block 32 : !tile.tile<64x64xf32> -> !tile.tile<32x64xf4E2M1FN>, !tile.tile<32x2xf8E8M0FNU>
  func.return
}
// CHECK: error: 'tile.quantize' op quantized tile has shape [32, 64], the source [64, 64]

// -----

func.func @quantize_to_fp8(%x: !tile.tile<64x64xf32>) {
  %q, %s = tile.quantize %x block 32 : !tile.tile<64x64xf32> -> !tile.tile<64x64xf8E4M3FN>, !tile.tile<64x2xf8E8M0FNU>
  func.return
}
// CHECK: error: 'tile.quantize' op the quantized tile must hold one of f4E2M1FN, got f8E4M3FN

// -----

func.func @quantize_scale_type(%x: !tile.tile<64x64xf32>) {
  %q, %s = tile.quantize %x block 32 : !tile.tile<64x64xf32> -> !tile.tile<64x64xf4E2M1FN>, !tile.tile<64x2xf16>
  func.return
}
// CHECK: error: 'tile.quantize' op the scales must hold one of f8E8M0FNU, f8E4M3FN, got f16

// -----

func.func @quantize_source_type(%x: !tile.tile<64x64xi32>) {
  %q, %s = tile.quantize %x block 32 : !tile.tile<64x64xi32> -> !tile.tile<64x64xf4E2M1FN>, !tile.tile<64x2xf8E8M0FNU>
  func.return
}
// CHECK: error: 'tile.quantize' op the quantized source must hold one of f32, f16, bf16, got i32

// -----

func.func @dequantize_scale_shape(%q: !tile.tile<64x64xf4E2M1FN>, %s: !tile.tile<2x64xf8E8M0FNU>) {
  %x = tile.dequantize %q scale %s block 32 : !tile.tile<64x64xf4E2M1FN>, !tile.tile<2x64xf8E8M0FNU> -> !tile.tile<64x64xf32>
  func.return
}
// CHECK: error: 'tile.dequantize' op scales of a [64, 64] tile with block 32 must have shape [64, 2], got [2, 64]

// -----

func.func @dequantize_result_type(%q: !tile.tile<64x64xf4E2M1FN>, %s: !tile.tile<64x2xf8E8M0FNU>) {
  %x = tile.dequantize %q scale %s block 32 : !tile.tile<64x64xf4E2M1FN>, !tile.tile<64x2xf8E8M0FNU> -> !tile.tile<64x64xi32>
  func.return
}
// CHECK: error: 'tile.dequantize' op the dequantized result must hold one of f32, f16, bf16, got i32

// -----

func.func @scaled_matmul_block_does_not_divide_k(%a: !tile.tile<128x48xf4E2M1FN>, %sa: !tile.tile<128x1xf8E8M0FNU>, %b: !tile.tile<48x64xf4E2M1FN>, %sb: !tile.tile<64x1xf8E8M0FNU>) {
  %c = tile.scaled_matmul %a scale %sa, %b scale %sb block 32 : !tile.tile<128x48xf4E2M1FN>, !tile.tile<128x1xf8E8M0FNU>, !tile.tile<48x64xf4E2M1FN>, !tile.tile<64x1xf8E8M0FNU> -> !tile.tile<128x64xf32>
  func.return
}
// CHECK: error: 'tile.scaled_matmul' op block 32 does not divide K = 48 of a scaled matmul

// -----

/// b_scale is [N, K/block] (per output column), not [K/block, N].
func.func @scaled_matmul_b_scale_transposed(%a: !tile.tile<128x64xf4E2M1FN>, %sa: !tile.tile<128x2xf8E8M0FNU>, %b: !tile.tile<64x32xf4E2M1FN>, %sb: !tile.tile<2x32xf8E8M0FNU>) {
  %c = tile.scaled_matmul %a scale %sa, %b scale %sb block 32 : !tile.tile<128x64xf4E2M1FN>, !tile.tile<128x2xf8E8M0FNU>, !tile.tile<64x32xf4E2M1FN>, !tile.tile<2x32xf8E8M0FNU> -> !tile.tile<128x32xf32>
  func.return
}
// CHECK: error: 'tile.scaled_matmul' op b_scale must have shape [N, K/block] = [32, 2] for a [128, 64] @ [64, 32] matmul with block 32, got [2, 32]

// -----

func.func @scaled_matmul_a_scale_shape(%a: !tile.tile<128x64xf4E2M1FN>, %sa: !tile.tile<128x4xf8E8M0FNU>, %b: !tile.tile<64x32xf4E2M1FN>, %sb: !tile.tile<32x2xf8E8M0FNU>) {
  %c = tile.scaled_matmul %a scale %sa, %b scale %sb block 32 : !tile.tile<128x64xf4E2M1FN>, !tile.tile<128x4xf8E8M0FNU>, !tile.tile<64x32xf4E2M1FN>, !tile.tile<32x2xf8E8M0FNU> -> !tile.tile<128x32xf32>
  func.return
}
// CHECK: error: 'tile.scaled_matmul' op a_scale must have shape [M, K/block] = [128, 2] for a [128, 64] @ [64, 32] matmul with block 32, got [128, 4]

// -----

func.func @scaled_matmul_f16_operands(%a: !tile.tile<128x64xf16>, %sa: !tile.tile<128x2xf8E8M0FNU>, %b: !tile.tile<64x32xf16>, %sb: !tile.tile<32x2xf8E8M0FNU>) {
  %c = tile.scaled_matmul %a scale %sa, %b scale %sb block 32 : !tile.tile<128x64xf16>, !tile.tile<128x2xf8E8M0FNU>, !tile.tile<64x32xf16>, !tile.tile<32x2xf8E8M0FNU> -> !tile.tile<128x32xf32>
  func.return
}
// CHECK: error: 'tile.scaled_matmul' op lhs must hold one of f4E2M1FN, f8E4M3FN, f8E5M2, got f16

// -----

func.func @scaled_matmul_mixed_scale_types(%a: !tile.tile<128x64xf4E2M1FN>, %sa: !tile.tile<128x2xf8E8M0FNU>, %b: !tile.tile<64x32xf4E2M1FN>, %sb: !tile.tile<32x2xf8E4M3FN>) {
  %c = tile.scaled_matmul %a scale %sa, %b scale %sb block 32 : !tile.tile<128x64xf4E2M1FN>, !tile.tile<128x2xf8E8M0FNU>, !tile.tile<64x32xf4E2M1FN>, !tile.tile<32x2xf8E4M3FN> -> !tile.tile<128x32xf32>
  func.return
}
// CHECK: error: 'tile.scaled_matmul' op both scales must share a type, got f8E8M0FNU and f8E4M3FN

// -----

func.func @scaled_matmul_rank(%a: !tile.tile<2x128x64xf4E2M1FN>, %sa: !tile.tile<2x128x2xf8E8M0FNU>, %b: !tile.tile<64x32xf4E2M1FN>, %sb: !tile.tile<32x2xf8E8M0FNU>) {
  %c = tile.scaled_matmul %a scale %sa, %b scale %sb block 32 : !tile.tile<2x128x64xf4E2M1FN>, !tile.tile<2x128x2xf8E8M0FNU>, !tile.tile<64x32xf4E2M1FN>, !tile.tile<32x2xf8E8M0FNU> -> !tile.tile<2x128x32xf32>
  func.return
}
// CHECK: error: 'tile.scaled_matmul' op scaled matmul needs 2-D tiles, got shapes [2, 128, 64] and [64, 32]

// -----

/// The accumulator is f32 like the result (the ACC type variable ties them).
func.func @scaled_matmul_f16_result(%a: !tile.tile<128x64xf4E2M1FN>, %sa: !tile.tile<128x2xf8E8M0FNU>, %b: !tile.tile<64x32xf4E2M1FN>, %sb: !tile.tile<32x2xf8E8M0FNU>) {
  %c = tile.scaled_matmul %a scale %sa, %b scale %sb block 32 : !tile.tile<128x64xf4E2M1FN>, !tile.tile<128x2xf8E8M0FNU>, !tile.tile<64x32xf4E2M1FN>, !tile.tile<32x2xf8E8M0FNU> -> !tile.tile<128x32xf16>
  func.return
}
// CHECK: error: 'tile.scaled_matmul' op the result must hold one of f32, got f16

// -----

func.func @reduce_kind(%x: !tile.tile<64x64xf32>) {
  %s = tile.reduce "mean" %x {axis = 1 : i64} : !tile.tile<64x64xf32> -> !tile.tile<64xf32>
  func.return
}
// CHECK: error: 'tile.reduce' op unknown reduction 'mean'; expected one of ('sum', 'max', 'min', 'argmax', 'argmin')

// -----

func.func @reduce_axis(%x: !tile.tile<64x64xf32>) {
  %s = tile.reduce "sum" %x {axis = 2 : i64} : !tile.tile<64x64xf32> -> !tile.tile<64xf32>
  func.return
}
// CHECK: error: 'tile.reduce' op axis 2 is out of range for a tile of shape [64, 64]

// -----

func.func @reduce_result_shape(%x: !tile.tile<64x32xf32>) {
  %s = tile.reduce "sum" %x {axis = 1 : i64} : !tile.tile<64x32xf32> -> !tile.tile<32xf32>
  func.return
}
// CHECK: error: 'tile.reduce' op reduced shape is [64], result type says [32]

// -----

func.func @rand_offsets(%seed: i64, %off: !tile.tile<64xi64>) {
  %u = tile.rand %seed, %off : i64, !tile.tile<64xi64> -> !tile.tile<64xf32>
  func.return
}
// CHECK: error: tile.rand offsets must be an i32 tile

// -----

/// Custom form: with one printed type, mixed operand types are a parse error.
func.func @binary_mixed_types_custom(%a: !tile.tile<4xf32>, %b: !tile.tile<4xf16>) {
  %s = tile.add %a, %b : !tile.tile<4xf32>
  func.return
}
// CHECK: operand is used with type !tile.tile<4xf32>, but has been previously used or defined with type !tile.tile<4xf16>

// -----

/// Custom form: acc takes the result type, so a mismatch is a parse error.
func.func @matmul_acc_type_custom(%a: !tile.tile<64x32xf16>, %b: !tile.tile<32x64xf16>, %acc: !tile.tile<64x64xf16>) {
  %c = tile.matmul %a, %b, %acc : !tile.tile<64x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<64x64xf32>
  func.return
}
// CHECK: operand is used with type !tile.tile<64x64xf32>, but has been previously used or defined with type !tile.tile<64x64xf16>

// -----

/// tile.extract needs a one-element tile.
func.func @extract_many_elements(%t: !tile.tile<4xf32>) {
  %s = tile.extract %t : !tile.tile<4xf32> -> f32
  func.return
}
// CHECK: error: tile.extract needs a one-element tile, got shape [4]

// -----

/// tile.extract gives the tile's element type.
func.func @extract_wrong_type(%t: !tile.tile<f32>) {
  %s = tile.extract %t : !tile.tile<f32> -> f16
  func.return
}
// CHECK: error: tile.extract of a f32 tile gives f32, not f16
