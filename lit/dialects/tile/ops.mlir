// RUN: TILEC_ROUNDTRIP
// RUN: TILEC_GENERIC_ROUNDTRIP

/// Round trip of every tile op (custom -> generic -> custom) and spot checks of the generic form.
/// tests/test_lit_lint.py fails if an op of the dialect is missing here.

/// tile_idx / num_tiles / dim: grid axis and tensor-dim queries, `?` dims print back as `?`.
// CHECK-LABEL: func.func @grid_queries
//  CHECK-NEXT:   %i = tile.tile_idx 0
//  CHECK-NEXT:   %n = tile.num_tiles 1
//  CHECK-NEXT:   %d = tile.dim %X 1 : !tile.tensor<?x64xf32>
// CHECK-GENERIC-LABEL: "func.func"() <{sym_name = "grid_queries"
//  CHECK-GENERIC:   %i = "tile.tile_idx"() <{axis = 0 : i64}> : () -> i32
//  CHECK-GENERIC:   %d = "tile.dim"(%X) <{axis = 1 : i64}> : (!tile.tensor<?x64xf32>) -> i32
func.func @grid_queries(%X: !tile.tensor<?x64xf32>) {
  %i = tile.tile_idx 0
  %n = tile.num_tiles 1
  %d = tile.dim %X 1 : !tile.tensor<?x64xf32>
  func.return
}

// -----

/// tile.load: default boundary_check/padding are not printed, but are properties in generic form.
// CHECK-LABEL: func.func @load_default_properties
//  CHECK-NEXT:   %t = tile.load %X[%r, %c] : !tile.tensor<?x?xf16> -> !tile.tile<64x32xf16>
// CHECK-GENERIC-LABEL: "func.func"() <{sym_name = "load_default_properties"
//  CHECK-GENERIC:   %t = "tile.load"(%X, %r, %c) <{boundary_check = true, padding = 0.000000e+00 : f64}> : (!tile.tensor<?x?xf16>, i32, i32) -> !tile.tile<64x32xf16>
func.func @load_default_properties(%X: !tile.tensor<?x?xf16>, %r: i32, %c: i32) {
  %t = tile.load %X[%r, %c] : !tile.tensor<?x?xf16> -> !tile.tile<64x32xf16>
  func.return
}

// -----

/// tile.load: non-default boundary_check and padding print in the attr-dict.
// CHECK-LABEL: func.func @load_explicit_properties
//  CHECK-NEXT:   %t = tile.load %X[%r, %c] {boundary_check = false, padding = -1.000000e+00 : f64} : !tile.tensor<?x?xf16> -> !tile.tile<64x32xf16>
func.func @load_explicit_properties(%X: !tile.tensor<?x?xf16>, %r: i32, %c: i32) {
  %t = tile.load %X[%r, %c] {boundary_check = false, padding = -1.000000e+00 : f64} : !tile.tensor<?x?xf16> -> !tile.tile<64x32xf16>
  func.return
}

// -----

/// tile.store: default mode is implicit, atomic_add is printed.
// CHECK-LABEL: func.func @store_modes
//  CHECK-NEXT:   tile.store %Y[%r, %c], %t : !tile.tensor<?x?xf32>, !tile.tile<64x64xf32>
//  CHECK-NEXT:   tile.store %Y[%r, %c], %t {mode = "atomic_add"} : !tile.tensor<?x?xf32>, !tile.tile<64x64xf32>
// CHECK-GENERIC-LABEL: "func.func"() <{sym_name = "store_modes"
//  CHECK-GENERIC:   "tile.store"(%Y, %r, %c, %t) <{mode = "store"}> : (!tile.tensor<?x?xf32>, i32, i32, !tile.tile<64x64xf32>) -> ()
func.func @store_modes(%Y: !tile.tensor<?x?xf32>, %r: i32, %c: i32, %t: !tile.tile<64x64xf32>) {
  tile.store %Y[%r, %c], %t : !tile.tensor<?x?xf32>, !tile.tile<64x64xf32>
  tile.store %Y[%r, %c], %t {mode = "atomic_add"} : !tile.tensor<?x?xf32>, !tile.tile<64x64xf32>
  func.return
}

// -----

/// splat / broadcast / reshape / permute / arange.
// CHECK-LABEL: func.func @shape_ops
//  CHECK-NEXT:   %s = tile.splat %x : f32 -> !tile.tile<64x64xf32>
//  CHECK-NEXT:   %b = tile.broadcast %row : !tile.tile<1x64xf32> -> !tile.tile<32x64xf32>
//  CHECK-NEXT:   %r = tile.reshape %v : !tile.tile<64xf32> -> !tile.tile<64x1xf32>
//  CHECK-NEXT:   %p = tile.permute %m {perm = array<i64: 1, 0>} : !tile.tile<64x32xf16> -> !tile.tile<32x64xf16>
//  CHECK-NEXT:   %a = tile.arange : !tile.tile<128xi32>
//  CHECK-NEXT:   %a5 = tile.arange {start = 5 : i64} : !tile.tile<128xi32>
// CHECK-GENERIC-LABEL: "func.func"() <{sym_name = "shape_ops"
//  CHECK-GENERIC:   %p = "tile.permute"(%m) <{perm = array<i64: 1, 0>}> : (!tile.tile<64x32xf16>) -> !tile.tile<32x64xf16>
//  CHECK-GENERIC:   %a = "tile.arange"() <{start = 0 : i64}> : () -> !tile.tile<128xi32>
func.func @shape_ops(%x: f32, %row: !tile.tile<1x64xf32>, %v: !tile.tile<64xf32>, %m: !tile.tile<64x32xf16>) {
  %s = tile.splat %x : f32 -> !tile.tile<64x64xf32>
  %b = tile.broadcast %row : !tile.tile<1x64xf32> -> !tile.tile<32x64xf32>
  %r = tile.reshape %v : !tile.tile<64xf32> -> !tile.tile<64x1xf32>
  %p = tile.permute %m {perm = array<i64: 1, 0>} : !tile.tile<64x32xf16> -> !tile.tile<32x64xf16>
  %a = tile.arange : !tile.tile<128xi32>
  %a5 = tile.arange {start = 5 : i64} : !tile.tile<128xi32>
  func.return
}

// -----

/// A rank-0 tile (result of a full reduction) prints as `!tile.tile<f32>`.
// CHECK-LABEL: func.func @rank0_tile
//  CHECK-NEXT:   %s = tile.splat %x : f32 -> !tile.tile<f32>
func.func @rank0_tile(%x: f32) {
  %s = tile.splat %x : f32 -> !tile.tile<f32>
  func.return
}

// -----

/// Every arithmetic elementwise binary op (generated classes) on f32 tiles.
// CHECK-LABEL: func.func @binary_arith_ops
//  CHECK-NEXT:   %add = tile.add %a, %b : !tile.tile<64xf32>
//  CHECK-NEXT:   %sub = tile.sub %a, %b : !tile.tile<64xf32>
//  CHECK-NEXT:   %mul = tile.mul %a, %b : !tile.tile<64xf32>
//  CHECK-NEXT:   %div = tile.div %a, %b : !tile.tile<64xf32>
//  CHECK-NEXT:   %floordiv = tile.floordiv %a, %b : !tile.tile<64xf32>
//  CHECK-NEXT:   %rem = tile.rem %a, %b : !tile.tile<64xf32>
//  CHECK-NEXT:   %pow = tile.pow %a, %b : !tile.tile<64xf32>
//  CHECK-NEXT:   %maximum = tile.maximum %a, %b : !tile.tile<64xf32>
//  CHECK-NEXT:   %minimum = tile.minimum %a, %b : !tile.tile<64xf32>
// CHECK-GENERIC-LABEL: "func.func"() <{sym_name = "binary_arith_ops"
//  CHECK-GENERIC:   %add = "tile.add"(%a, %b) : (!tile.tile<64xf32>, !tile.tile<64xf32>) -> !tile.tile<64xf32>
func.func @binary_arith_ops(%a: !tile.tile<64xf32>, %b: !tile.tile<64xf32>) {
  %add = tile.add %a, %b : !tile.tile<64xf32>
  %sub = tile.sub %a, %b : !tile.tile<64xf32>
  %mul = tile.mul %a, %b : !tile.tile<64xf32>
  %div = tile.div %a, %b : !tile.tile<64xf32>
  %floordiv = tile.floordiv %a, %b : !tile.tile<64xf32>
  %rem = tile.rem %a, %b : !tile.tile<64xf32>
  %pow = tile.pow %a, %b : !tile.tile<64xf32>
  %maximum = tile.maximum %a, %b : !tile.tile<64xf32>
  %minimum = tile.minimum %a, %b : !tile.tile<64xf32>
  func.return
}

// -----

/// Every bitwise elementwise binary op on i32 tiles.
// CHECK-LABEL: func.func @binary_bitwise_ops
//  CHECK-NEXT:   %and = tile.and %a, %b : !tile.tile<64xi32>
//  CHECK-NEXT:   %or = tile.or %a, %b : !tile.tile<64xi32>
//  CHECK-NEXT:   %xor = tile.xor %a, %b : !tile.tile<64xi32>
//  CHECK-NEXT:   %shl = tile.shl %a, %b : !tile.tile<64xi32>
//  CHECK-NEXT:   %shr = tile.shr %a, %b : !tile.tile<64xi32>
func.func @binary_bitwise_ops(%a: !tile.tile<64xi32>, %b: !tile.tile<64xi32>) {
  %and = tile.and %a, %b : !tile.tile<64xi32>
  %or = tile.or %a, %b : !tile.tile<64xi32>
  %xor = tile.xor %a, %b : !tile.tile<64xi32>
  %shl = tile.shl %a, %b : !tile.tile<64xi32>
  %shr = tile.shr %a, %b : !tile.tile<64xi32>
  func.return
}

// -----

/// Elementwise ops also take scalars of one type.
// CHECK-LABEL: func.func @binary_op_on_scalars
//  CHECK-NEXT:   %s = tile.add %i, %j : i32
//  CHECK-NEXT:   %p = tile.pow %x, %x : f32
func.func @binary_op_on_scalars(%i: i32, %j: i32, %x: f32) {
  %s = tile.add %i, %j : i32
  %p = tile.pow %x, %x : f32
  func.return
}

// -----

/// Unary ops valid on integers: neg / abs / relu / not.
// CHECK-LABEL: func.func @unary_int_ops
//  CHECK-NEXT:   %neg = tile.neg %a : !tile.tile<64xi32>
//  CHECK-NEXT:   %abs = tile.abs %a : !tile.tile<64xi32>
//  CHECK-NEXT:   %relu = tile.relu %a : !tile.tile<64xi32>
//  CHECK-NEXT:   %not = tile.not %a : !tile.tile<64xi32>
func.func @unary_int_ops(%a: !tile.tile<64xi32>) {
  %neg = tile.neg %a : !tile.tile<64xi32>
  %abs = tile.abs %a : !tile.tile<64xi32>
  %relu = tile.relu %a : !tile.tile<64xi32>
  %not = tile.not %a : !tile.tile<64xi32>
  func.return
}

// -----

/// Every float-only unary op on f32 tiles.
// CHECK-LABEL: func.func @unary_float_ops
//  CHECK-NEXT:   %exp = tile.exp %a : !tile.tile<64xf32>
//  CHECK-NEXT:   %exp2 = tile.exp2 %a : !tile.tile<64xf32>
//  CHECK-NEXT:   %log = tile.log %a : !tile.tile<64xf32>
//  CHECK-NEXT:   %log2 = tile.log2 %a : !tile.tile<64xf32>
//  CHECK-NEXT:   %sqrt = tile.sqrt %a : !tile.tile<64xf32>
//  CHECK-NEXT:   %rsqrt = tile.rsqrt %a : !tile.tile<64xf32>
//  CHECK-NEXT:   %tanh = tile.tanh %a : !tile.tile<64xf32>
//  CHECK-NEXT:   %sigmoid = tile.sigmoid %a : !tile.tile<64xf32>
//  CHECK-NEXT:   %erf = tile.erf %a : !tile.tile<64xf32>
//  CHECK-NEXT:   %sin = tile.sin %a : !tile.tile<64xf32>
//  CHECK-NEXT:   %cos = tile.cos %a : !tile.tile<64xf32>
//  CHECK-NEXT:   %floor = tile.floor %a : !tile.tile<64xf32>
//  CHECK-NEXT:   %ceil = tile.ceil %a : !tile.tile<64xf32>
// CHECK-GENERIC-LABEL: "func.func"() <{sym_name = "unary_float_ops"
//  CHECK-GENERIC:   %exp = "tile.exp"(%a) : (!tile.tile<64xf32>) -> !tile.tile<64xf32>
func.func @unary_float_ops(%a: !tile.tile<64xf32>) {
  %exp = tile.exp %a : !tile.tile<64xf32>
  %exp2 = tile.exp2 %a : !tile.tile<64xf32>
  %log = tile.log %a : !tile.tile<64xf32>
  %log2 = tile.log2 %a : !tile.tile<64xf32>
  %sqrt = tile.sqrt %a : !tile.tile<64xf32>
  %rsqrt = tile.rsqrt %a : !tile.tile<64xf32>
  %tanh = tile.tanh %a : !tile.tile<64xf32>
  %sigmoid = tile.sigmoid %a : !tile.tile<64xf32>
  %erf = tile.erf %a : !tile.tile<64xf32>
  %sin = tile.sin %a : !tile.tile<64xf32>
  %cos = tile.cos %a : !tile.tile<64xf32>
  %floor = tile.floor %a : !tile.tile<64xf32>
  %ceil = tile.ceil %a : !tile.tile<64xf32>
  func.return
}

// -----

/// cmp (string predicate, i1 result) / select / cast.
// CHECK-LABEL: func.func @cmp_select_cast
//  CHECK-NEXT:   %m = tile.cmp "lt" %a, %b : !tile.tile<64xi32> -> !tile.tile<64xi1>
//  CHECK-NEXT:   %s = tile.select %m, %f, %g : !tile.tile<64xi1>, !tile.tile<64xf32>
//  CHECK-NEXT:   %h = tile.cast %f : !tile.tile<64xf32> -> !tile.tile<64xf16>
// CHECK-GENERIC-LABEL: "func.func"() <{sym_name = "cmp_select_cast"
//  CHECK-GENERIC:   %m = "tile.cmp"(%a, %b) <{predicate = "lt"}> : (!tile.tile<64xi32>, !tile.tile<64xi32>) -> !tile.tile<64xi1>
func.func @cmp_select_cast(%a: !tile.tile<64xi32>, %b: !tile.tile<64xi32>, %f: !tile.tile<64xf32>, %g: !tile.tile<64xf32>) {
  %m = tile.cmp "lt" %a, %b : !tile.tile<64xi32> -> !tile.tile<64xi1>
  %s = tile.select %m, %f, %g : !tile.tile<64xi1>, !tile.tile<64xf32>
  %h = tile.cast %f : !tile.tile<64xf32> -> !tile.tile<64xf16>
  func.return
}

// -----

/// tile.matmul: the optional acc operand round-trips in both forms.
// CHECK-LABEL: func.func @matmul_with_and_without_acc
//  CHECK-NEXT:   %c = tile.matmul %a, %b : !tile.tile<64x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<64x64xf32>
//  CHECK-NEXT:   %d = tile.matmul %a, %b, %acc : !tile.tile<64x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<64x64xf32>
// CHECK-GENERIC-LABEL: "func.func"() <{sym_name = "matmul_with_and_without_acc"
//  CHECK-GENERIC:   %d = "tile.matmul"(%a, %b, %acc) : (!tile.tile<64x32xf16>, !tile.tile<32x64xf16>, !tile.tile<64x64xf32>) -> !tile.tile<64x64xf32>
func.func @matmul_with_and_without_acc(%a: !tile.tile<64x32xf16>, %b: !tile.tile<32x64xf16>, %acc: !tile.tile<64x64xf32>) {
  %c = tile.matmul %a, %b : !tile.tile<64x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<64x64xf32>
  %d = tile.matmul %a, %b, %acc : !tile.tile<64x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<64x64xf32>
  func.return
}

// -----

/// tile.matmul broadcasts leading batch dims.
// CHECK-LABEL: func.func @batched_matmul
//  CHECK-NEXT:   %c = tile.matmul %a, %b : !tile.tile<4x16x8xf16>, !tile.tile<1x8x32xf16> -> !tile.tile<4x16x32xf32>
func.func @batched_matmul(%a: !tile.tile<4x16x8xf16>, %b: !tile.tile<1x8x32xf16>) {
  %c = tile.matmul %a, %b : !tile.tile<4x16x8xf16>, !tile.tile<1x8x32xf16> -> !tile.tile<4x16x32xf32>
  func.return
}

// -----

/// tile.quantize: one op, two results (e2m1 values and one scale per block of the last axis).
// CHECK-LABEL: func.func @quantize_mx_and_nvfp4
//  CHECK-NEXT:   %q, %s = tile.quantize %x block 32 : !tile.tile<128x64xf32> -> !tile.tile<128x64xf4E2M1FN>, !tile.tile<128x2xf8E8M0FNU>
//  CHECK-NEXT:   %q16, %s16 = tile.quantize %h block 16 : !tile.tile<4x64xbf16> -> !tile.tile<4x64xf4E2M1FN>, !tile.tile<4x4xf8E4M3FN>
// CHECK-GENERIC-LABEL: "func.func"() <{sym_name = "quantize_mx_and_nvfp4"
//  CHECK-GENERIC:   %q, %s = "tile.quantize"(%x) <{block = 32 : i64}> : (!tile.tile<128x64xf32>) -> (!tile.tile<128x64xf4E2M1FN>, !tile.tile<128x2xf8E8M0FNU>)
func.func @quantize_mx_and_nvfp4(%x: !tile.tile<128x64xf32>, %h: !tile.tile<4x64xbf16>) {
  %q, %s = tile.quantize %x block 32 : !tile.tile<128x64xf32> -> !tile.tile<128x64xf4E2M1FN>, !tile.tile<128x2xf8E8M0FNU>
  %q16, %s16 = tile.quantize %h block 16 : !tile.tile<4x64xbf16> -> !tile.tile<4x64xf4E2M1FN>, !tile.tile<4x4xf8E4M3FN>
  func.return
}

// -----

/// tile.dequantize: e2m1 values times their block scales, to f32 or a narrower float.
// CHECK-LABEL: func.func @dequantize
//  CHECK-NEXT:   %x = tile.dequantize %q scale %s block 32 : !tile.tile<128x64xf4E2M1FN>, !tile.tile<128x2xf8E8M0FNU> -> !tile.tile<128x64xf32>
//  CHECK-NEXT:   %h = tile.dequantize %q scale %s block 32 : !tile.tile<128x64xf4E2M1FN>, !tile.tile<128x2xf8E8M0FNU> -> !tile.tile<128x64xf16>
// CHECK-GENERIC-LABEL: "func.func"() <{sym_name = "dequantize"
//  CHECK-GENERIC:   %x = "tile.dequantize"(%q, %s) <{block = 32 : i64}> : (!tile.tile<128x64xf4E2M1FN>, !tile.tile<128x2xf8E8M0FNU>) -> !tile.tile<128x64xf32>
func.func @dequantize(%q: !tile.tile<128x64xf4E2M1FN>, %s: !tile.tile<128x2xf8E8M0FNU>) {
  %x = tile.dequantize %q scale %s block 32 : !tile.tile<128x64xf4E2M1FN>, !tile.tile<128x2xf8E8M0FNU> -> !tile.tile<128x64xf32>
  %h = tile.dequantize %q scale %s block 32 : !tile.tile<128x64xf4E2M1FN>, !tile.tile<128x2xf8E8M0FNU> -> !tile.tile<128x64xf16>
  func.return
}

// -----

/// tile.scaled_matmul: MXFP4 (ue8m0 per 32) with and without acc; b_scale is [N, K/block].
// CHECK-LABEL: func.func @scaled_matmul_mxfp4
//  CHECK-NEXT:   %c = tile.scaled_matmul %a scale %sa, %b scale %sb block 32 : !tile.tile<128x64xf4E2M1FN>, !tile.tile<128x2xf8E8M0FNU>, !tile.tile<64x32xf4E2M1FN>, !tile.tile<32x2xf8E8M0FNU> -> !tile.tile<128x32xf32>
//  CHECK-NEXT:   %d = tile.scaled_matmul %a scale %sa, %b scale %sb, %acc block 32 : !tile.tile<128x64xf4E2M1FN>, !tile.tile<128x2xf8E8M0FNU>, !tile.tile<64x32xf4E2M1FN>, !tile.tile<32x2xf8E8M0FNU> -> !tile.tile<128x32xf32>
// CHECK-GENERIC-LABEL: "func.func"() <{sym_name = "scaled_matmul_mxfp4"
//  CHECK-GENERIC:   %d = "tile.scaled_matmul"(%a, %sa, %b, %sb, %acc) <{block = 32 : i64}> : (!tile.tile<128x64xf4E2M1FN>, !tile.tile<128x2xf8E8M0FNU>, !tile.tile<64x32xf4E2M1FN>, !tile.tile<32x2xf8E8M0FNU>, !tile.tile<128x32xf32>) -> !tile.tile<128x32xf32>
func.func @scaled_matmul_mxfp4(%a: !tile.tile<128x64xf4E2M1FN>, %sa: !tile.tile<128x2xf8E8M0FNU>, %b: !tile.tile<64x32xf4E2M1FN>, %sb: !tile.tile<32x2xf8E8M0FNU>, %acc: !tile.tile<128x32xf32>) {
  %c = tile.scaled_matmul %a scale %sa, %b scale %sb block 32 : !tile.tile<128x64xf4E2M1FN>, !tile.tile<128x2xf8E8M0FNU>, !tile.tile<64x32xf4E2M1FN>, !tile.tile<32x2xf8E8M0FNU> -> !tile.tile<128x32xf32>
  %d = tile.scaled_matmul %a scale %sa, %b scale %sb, %acc block 32 : !tile.tile<128x64xf4E2M1FN>, !tile.tile<128x2xf8E8M0FNU>, !tile.tile<64x32xf4E2M1FN>, !tile.tile<32x2xf8E8M0FNU> -> !tile.tile<128x32xf32>
  func.return
}

// -----

/// tile.scaled_matmul: NVFP4 (e4m3 per 16).
// CHECK-LABEL: func.func @scaled_matmul_nvfp4
//  CHECK-NEXT:   %c = tile.scaled_matmul %a scale %sa, %b scale %sb block 16 : !tile.tile<128x64xf4E2M1FN>, !tile.tile<128x4xf8E4M3FN>, !tile.tile<64x8xf4E2M1FN>, !tile.tile<8x4xf8E4M3FN> -> !tile.tile<128x8xf32>
func.func @scaled_matmul_nvfp4(%a: !tile.tile<128x64xf4E2M1FN>, %sa: !tile.tile<128x4xf8E4M3FN>, %b: !tile.tile<64x8xf4E2M1FN>, %sb: !tile.tile<8x4xf8E4M3FN>) {
  %c = tile.scaled_matmul %a scale %sa, %b scale %sb block 16 : !tile.tile<128x64xf4E2M1FN>, !tile.tile<128x4xf8E4M3FN>, !tile.tile<64x8xf4E2M1FN>, !tile.tile<8x4xf8E4M3FN> -> !tile.tile<128x8xf32>
  func.return
}

// -----

/// tile.load / tile.store of a packed fp4 tensor: the types are logical (element counts, not bytes).
// CHECK-LABEL: func.func @fp4_load_store
//  CHECK-NEXT:   %t = tile.load %X[%r, %c] : !tile.tensor<?x?xf4E2M1FN> -> !tile.tile<64x32xf4E2M1FN>
//  CHECK-NEXT:   tile.store %X[%r, %c], %t : !tile.tensor<?x?xf4E2M1FN>, !tile.tile<64x32xf4E2M1FN>
func.func @fp4_load_store(%X: !tile.tensor<?x?xf4E2M1FN>, %r: i32, %c: i32) {
  %t = tile.load %X[%r, %c] : !tile.tensor<?x?xf4E2M1FN> -> !tile.tile<64x32xf4E2M1FN>
  tile.store %X[%r, %c], %t : !tile.tensor<?x?xf4E2M1FN>, !tile.tile<64x32xf4E2M1FN>
  func.return
}

// -----

/// tile.reduce: default keepdims is implicit; argmax gives i32.
// CHECK-LABEL: func.func @reduce_kinds
//  CHECK-NEXT:   %s = tile.reduce "sum" %x {axis = 1 : i64} : !tile.tile<64x64xf32> -> !tile.tile<64xf32>
//  CHECK-NEXT:   %k = tile.reduce "argmax" %x {axis = 0 : i64, keepdims = true} : !tile.tile<64x64xf32> -> !tile.tile<1x64xi32>
// CHECK-GENERIC-LABEL: "func.func"() <{sym_name = "reduce_kinds"
//  CHECK-GENERIC:   %s = "tile.reduce"(%x) <{kind = "sum", axis = 1 : i64, keepdims = false}> : (!tile.tile<64x64xf32>) -> !tile.tile<64xf32>
func.func @reduce_kinds(%x: !tile.tile<64x64xf32>) {
  %s = tile.reduce "sum" %x {axis = 1 : i64} : !tile.tile<64x64xf32> -> !tile.tile<64xf32>
  %k = tile.reduce "argmax" %x {axis = 0 : i64, keepdims = true} : !tile.tile<64x64xf32> -> !tile.tile<1x64xi32>
  func.return
}

// -----

/// tile.rand: i64 seed, i32 offsets tile, f32 result.
// CHECK-LABEL: func.func @rand
//  CHECK-NEXT:   %u = tile.rand %seed, %off : i64, !tile.tile<64x64xi32> -> !tile.tile<64x64xf32>
func.func @rand(%seed: i64, %off: !tile.tile<64x64xi32>) {
  %u = tile.rand %seed, %off : i64, !tile.tile<64x64xi32> -> !tile.tile<64x64xf32>
  func.return
}

// -----

/// tile.extract: the element of a one-element tile as a scalar.
// CHECK-LABEL: func.func @extract_scalar
//  CHECK-NEXT:   %s = tile.extract %t : !tile.tile<f32> -> f32
//  CHECK-NEXT:   %u = tile.extract %one : !tile.tile<1x1xi32> -> i32
// CHECK-GENERIC-LABEL: "func.func"() <{sym_name = "extract_scalar"
//  CHECK-GENERIC:   %s = "tile.extract"(%t) : (!tile.tile<f32>) -> f32
func.func @extract_scalar(%t: !tile.tile<f32>, %one: !tile.tile<1x1xi32>) {
  %s = tile.extract %t : !tile.tile<f32> -> f32
  %u = tile.extract %one : !tile.tile<1x1xi32> -> i32
  func.return
}
