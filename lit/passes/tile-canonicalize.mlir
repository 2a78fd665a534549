// RUN: tilec-opt %s -p tile-canonicalize --split-input-file | filecheck %s

/// [Pattern: FuseAddIntoMatmul] IN: tile.add %acc, matmul(a, b)  OUT: tile.matmul a, b, acc. Why: one MMA accumulates in place.
// CHECK-LABEL: func.func @fuse_add_into_matmul_acc_on_lhs
//  CHECK-SAME:   (%[[A:[^:]+]]: !tile.tile<64x32xf16>, %[[B:[^:]+]]: !tile.tile<32x64xf16>, %[[ACC:[^:]+]]: !tile.tile<64x64xf32>)
//  CHECK-NEXT:   %[[SUM:.*]] = tile.matmul %[[A]], %[[B]], %[[ACC]] :
//  CHECK-NEXT:   func.return %[[SUM]]
func.func @fuse_add_into_matmul_acc_on_lhs(%a: !tile.tile<64x32xf16>, %b: !tile.tile<32x64xf16>, %acc: !tile.tile<64x64xf32>) -> !tile.tile<64x64xf32> {
  %p = tile.matmul %a, %b : !tile.tile<64x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<64x64xf32>
  %s = tile.add %acc, %p : !tile.tile<64x64xf32>
  func.return %s : !tile.tile<64x64xf32>
}

// -----

/// [Pattern: FuseAddIntoMatmul] The product may be either operand of the add.
// CHECK-LABEL: func.func @fuse_add_into_matmul_acc_on_rhs
//  CHECK-SAME:   (%[[A:[^:]+]]: !tile.tile<64x32xf16>, %[[B:[^:]+]]: !tile.tile<32x64xf16>, %[[ACC:[^:]+]]: !tile.tile<64x64xf32>)
//  CHECK-NEXT:   %[[SUM:.*]] = tile.matmul %[[A]], %[[B]], %[[ACC]] :
//  CHECK-NEXT:   func.return %[[SUM]]
func.func @fuse_add_into_matmul_acc_on_rhs(%a: !tile.tile<64x32xf16>, %b: !tile.tile<32x64xf16>, %acc: !tile.tile<64x64xf32>) -> !tile.tile<64x64xf32> {
  %p = tile.matmul %a, %b : !tile.tile<64x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<64x64xf32>
  %s = tile.add %p, %acc : !tile.tile<64x64xf32>
  func.return %s : !tile.tile<64x64xf32>
}

// -----

/// [Pattern: FuseAddIntoMatmul] A block-scaled product fuses the same way (block and scales kept).
// CHECK-LABEL: func.func @fuse_add_into_scaled_matmul
//  CHECK-SAME:   (%[[A:[^:]+]]: !tile.tile<128x64xf4E2M1FN>, %[[SA:[^:]+]]: !tile.tile<128x2xf8E8M0FNU>, %[[B:[^:]+]]: !tile.tile<64x32xf4E2M1FN>, %[[SB:[^:]+]]: !tile.tile<32x2xf8E8M0FNU>, %[[ACC:[^:]+]]: !tile.tile<128x32xf32>)
//  CHECK-NEXT:   %[[SUM:.*]] = tile.scaled_matmul %[[A]] scale %[[SA]], %[[B]] scale %[[SB]], %[[ACC]] block 32 :
//  CHECK-NEXT:   func.return %[[SUM]]
func.func @fuse_add_into_scaled_matmul(%a: !tile.tile<128x64xf4E2M1FN>, %sa: !tile.tile<128x2xf8E8M0FNU>, %b: !tile.tile<64x32xf4E2M1FN>, %sb: !tile.tile<32x2xf8E8M0FNU>, %acc: !tile.tile<128x32xf32>) -> !tile.tile<128x32xf32> {
  %p = tile.scaled_matmul %a scale %sa, %b scale %sb block 32 : !tile.tile<128x64xf4E2M1FN>, !tile.tile<128x2xf8E8M0FNU>, !tile.tile<64x32xf4E2M1FN>, !tile.tile<32x2xf8E8M0FNU> -> !tile.tile<128x32xf32>
  %s = tile.add %acc, %p : !tile.tile<128x32xf32>
  func.return %s : !tile.tile<128x32xf32>
}

// -----

/// [Pattern: FuseAddIntoMatmul] Negative: the bare product is used again, so it must stay.
// CHECK-LABEL: func.func @negative_fuse_matmul_with_second_use
//       CHECK:   %[[P:.*]] = tile.matmul %{{[^,]+}}, %{{[^,]+}} :
//  CHECK-NEXT:   %[[S:.*]] = tile.add %{{.*}}, %[[P]]
//  CHECK-NEXT:   func.return %[[S]], %[[P]]
func.func @negative_fuse_matmul_with_second_use(%a: !tile.tile<64x32xf16>, %b: !tile.tile<32x64xf16>, %acc: !tile.tile<64x64xf32>) -> (!tile.tile<64x64xf32>, !tile.tile<64x64xf32>) {
  %p = tile.matmul %a, %b : !tile.tile<64x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<64x64xf32>
  %s = tile.add %acc, %p : !tile.tile<64x64xf32>
  func.return %s, %p : !tile.tile<64x64xf32>, !tile.tile<64x64xf32>
}

// -----

/// [Pattern: FuseAddIntoMatmul] Negative: a matmul that already has an acc is not re-fused.
// CHECK-LABEL: func.func @negative_fuse_matmul_with_acc
//  CHECK-SAME:   (%{{[^:]+}}: !tile.tile<64x32xf16>, %{{[^:]+}}: !tile.tile<32x64xf16>, %[[ACC:[^:]+]]: !tile.tile<64x64xf32>, %[[BIAS:[^:]+]]: !tile.tile<64x64xf32>)
//  CHECK-NEXT:   %[[P:.*]] = tile.matmul %{{.*}}, %{{.*}}, %[[ACC]] :
//  CHECK-NEXT:   %{{.*}} = tile.add %[[BIAS]], %[[P]]
func.func @negative_fuse_matmul_with_acc(%a: !tile.tile<64x32xf16>, %b: !tile.tile<32x64xf16>, %acc: !tile.tile<64x64xf32>, %bias: !tile.tile<64x64xf32>) -> !tile.tile<64x64xf32> {
  %p = tile.matmul %a, %b, %acc : !tile.tile<64x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<64x64xf32>
  %s = tile.add %bias, %p : !tile.tile<64x64xf32>
  func.return %s : !tile.tile<64x64xf32>
}

// -----

/// [Pattern: FuseAddIntoMatmul] Negative: a matmul outside the loop is not pulled into an add inside it.
// CHECK-LABEL: func.func @negative_fuse_loop_invariant_matmul
//       CHECK:   %[[P:.*]] = tile.matmul %{{[^,]+}}, %{{[^,]+}} :
//  CHECK-NEXT:   scf.for
//  CHECK-NEXT:     %{{.*}} = tile.add %{{.*}}, %[[P]]
func.func @negative_fuse_loop_invariant_matmul(%a: !tile.tile<64x32xf16>, %b: !tile.tile<32x64xf16>, %acc: !tile.tile<64x64xf32>, %n: index) -> !tile.tile<64x64xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %p = tile.matmul %a, %b : !tile.tile<64x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<64x64xf32>
  %r = scf.for %i = %c0 to %n step %c1 iter_args(%x = %acc) -> (!tile.tile<64x64xf32>) {
    %s = tile.add %x, %p : !tile.tile<64x64xf32>
    scf.yield %s : !tile.tile<64x64xf32>
  }
  func.return %r : !tile.tile<64x64xf32>
}

// -----

/// [Pattern: FoldSameTypeShapeOp] IN: broadcast / reshape / cast to the source's own type  OUT: the source. Why: no-ops.
// CHECK-LABEL: func.func @fold_same_type_shape_ops
//  CHECK-SAME:   (%[[T:[^:]+]]: !tile.tile<32x64xf32>)
//   CHECK-NOT:   tile.broadcast
//   CHECK-NOT:   tile.reshape
//   CHECK-NOT:   tile.cast
//       CHECK:   func.return %[[T]]
func.func @fold_same_type_shape_ops(%t: !tile.tile<32x64xf32>) -> !tile.tile<32x64xf32> {
  %b = tile.broadcast %t : !tile.tile<32x64xf32> -> !tile.tile<32x64xf32>
  %r = tile.reshape %b : !tile.tile<32x64xf32> -> !tile.tile<32x64xf32>
  %c = tile.cast %r : !tile.tile<32x64xf32> -> !tile.tile<32x64xf32>
  func.return %c : !tile.tile<32x64xf32>
}

// -----

/// [Pattern: FoldSameTypeShapeOp] Negative: a broadcast or reshape that changes the shape stays.
// CHECK-LABEL: func.func @negative_shape_ops_that_change_the_shape
//       CHECK:   tile.broadcast
//       CHECK:   tile.reshape
func.func @negative_shape_ops_that_change_the_shape(%t: !tile.tile<1x64xf32>) -> !tile.tile<2048xf32> {
  %b = tile.broadcast %t : !tile.tile<1x64xf32> -> !tile.tile<32x64xf32>
  %r = tile.reshape %b : !tile.tile<32x64xf32> -> !tile.tile<2048xf32>
  func.return %r : !tile.tile<2048xf32>
}

// -----

/// [Pattern: FoldSameTypeShapeOp] Negative: cast chains are never merged, not even f16 -> f32 -> f16
/// (exact for f16 numbers, but the pass folds by "same type" only, not by a table of exact dtype pairs).
// CHECK-LABEL: func.func @negative_cast_round_trip_f16_f32_f16
//  CHECK-SAME:   (%[[X:[^:]+]]: !tile.tile<64xf16>)
//  CHECK-NEXT:   %[[WIDE:.*]] = tile.cast %[[X]] : !tile.tile<64xf16> -> !tile.tile<64xf32>
//  CHECK-NEXT:   %[[NARROW:.*]] = tile.cast %[[WIDE]] : !tile.tile<64xf32> -> !tile.tile<64xf16>
//  CHECK-NEXT:   func.return %[[NARROW]]
func.func @negative_cast_round_trip_f16_f32_f16(%x: !tile.tile<64xf16>) -> !tile.tile<64xf16> {
  %w = tile.cast %x : !tile.tile<64xf16> -> !tile.tile<64xf32>
  %n = tile.cast %w : !tile.tile<64xf32> -> !tile.tile<64xf16>
  func.return %n : !tile.tile<64xf16>
}

// -----

/// [Pattern: FoldScalarConstants] IN: tile.add/sub/mul of i32 constants  OUT: arith.constant. Why: index math folds at compile time.
// CHECK-LABEL: func.func @fold_i32_add_sub_mul
//  CHECK-NEXT:   %[[SUM:.*]] = arith.constant 9 : i32
//  CHECK-NEXT:   %[[DIFF:.*]] = arith.constant -3 : i32
//  CHECK-NEXT:   %[[PROD:.*]] = arith.constant 18 : i32
//  CHECK-NEXT:   func.return %[[SUM]], %[[DIFF]], %[[PROD]]
func.func @fold_i32_add_sub_mul() -> (i32, i32, i32) {
  %c3 = arith.constant 3 : i32
  %c6 = arith.constant 6 : i32
  %sum = tile.add %c3, %c6 : i32
  %diff = tile.sub %c3, %c6 : i32
  %prod = tile.mul %c3, %c6 : i32
  func.return %sum, %diff, %prod : i32, i32, i32
}

// -----

/// [Pattern: FoldScalarConstants] i32 arithmetic wraps around (two's complement).
// CHECK-LABEL: func.func @fold_i32_add_wraps
//  CHECK-NEXT:   %[[SUM:.*]] = arith.constant -2147483648 : i32
//  CHECK-NEXT:   func.return %[[SUM]]
func.func @fold_i32_add_wraps() -> i32 {
  %max = arith.constant 2147483647 : i32
  %one = arith.constant 1 : i32
  %sum = tile.add %max, %one : i32
  func.return %sum : i32
}

// -----

/// [Pattern: FoldScalarConstants] floordiv rounds toward -inf and rem takes the sign of the divisor, as in Python.
// CHECK-LABEL: func.func @fold_i32_floordiv_rem_python_semantics
//  CHECK-NEXT:   %[[Q:.*]] = arith.constant -4 : i32
//  CHECK-NEXT:   %[[R:.*]] = arith.constant 1 : i32
//  CHECK-NEXT:   %[[R2:.*]] = arith.constant -1 : i32
//  CHECK-NEXT:   func.return %[[Q]], %[[R]], %[[R2]]
func.func @fold_i32_floordiv_rem_python_semantics() -> (i32, i32, i32) {
  %m7 = arith.constant -7 : i32
  %c7 = arith.constant 7 : i32
  %c2 = arith.constant 2 : i32
  %m2 = arith.constant -2 : i32
  %q = tile.floordiv %m7, %c2 : i32
  %r = tile.rem %m7, %c2 : i32
  %r2 = tile.rem %c7, %m2 : i32
  func.return %q, %r, %r2 : i32, i32, i32
}

// -----

/// [Pattern: FoldScalarConstants] Negative: division by zero and INT_MIN // -1 are left for the target.
// CHECK-LABEL: func.func @negative_fold_i32_floordiv_by_zero_or_overflow
//       CHECK:   tile.floordiv
//       CHECK:   tile.rem
//       CHECK:   tile.floordiv
func.func @negative_fold_i32_floordiv_by_zero_or_overflow() -> (i32, i32, i32) {
  %c7 = arith.constant 7 : i32
  %c0 = arith.constant 0 : i32
  %min = arith.constant -2147483648 : i32
  %m1 = arith.constant -1 : i32
  %q = tile.floordiv %c7, %c0 : i32
  %r = tile.rem %c7, %c0 : i32
  %o = tile.floordiv %min, %m1 : i32
  func.return %q, %r, %o : i32, i32, i32
}

// -----

/// [Pattern: FoldScalarConstants] IN: tile.add/sub/mul/div of f32 constants  OUT: arith.constant rounded to f32.
// CHECK-LABEL: func.func @fold_f32_add_sub_mul_div
//  CHECK-NEXT:   %[[SUM:.*]] = arith.constant 4.000000e+00 : f32
//  CHECK-NEXT:   %[[DIFF:.*]] = arith.constant -1.000000e+00 : f32
//  CHECK-NEXT:   %[[PROD:.*]] = arith.constant 3.750000e+00 : f32
//  CHECK-NEXT:   %[[QUOT:.*]] = arith.constant 6.000000e-01 : f32
//  CHECK-NEXT:   func.return %[[SUM]], %[[DIFF]], %[[PROD]], %[[QUOT]]
func.func @fold_f32_add_sub_mul_div() -> (f32, f32, f32, f32) {
  %x = arith.constant 1.5 : f32
  %y = arith.constant 2.5 : f32
  %sum = tile.add %x, %y : f32
  %diff = tile.sub %x, %y : f32
  %prod = tile.mul %x, %y : f32
  %quot = tile.div %x, %y : f32
  func.return %sum, %diff, %prod, %quot : f32, f32, f32, f32
}

// -----

/// [Pattern: FoldScalarConstants] An f32 product past the f32 range overflows to +inf (it is not an f64 result).
// CHECK-LABEL: func.func @fold_f32_mul_overflows_to_inf
//  CHECK-NEXT:   %[[PROD:.*]] = arith.constant 0x7f800000 : f32
//  CHECK-NEXT:   func.return %[[PROD]]
func.func @fold_f32_mul_overflows_to_inf() -> f32 {
  %big = arith.constant 3.0e38 : f32
  %prod = tile.mul %big, %big : f32
  func.return %prod : f32
}

// -----

/// [Pattern: FoldScalarConstants] Negative: f32 division by zero is not folded, nor is arithmetic on tiles.
// CHECK-LABEL: func.func @negative_fold_f32_div_by_zero_and_tiles
//       CHECK:   tile.div
//       CHECK:   tile.add
func.func @negative_fold_f32_div_by_zero_and_tiles(%t: !tile.tile<4xf32>) -> (f32, !tile.tile<4xf32>) {
  %one = arith.constant 1.0 : f32
  %zero = arith.constant 0.0 : f32
  %q = tile.div %one, %zero : f32
  %s = tile.add %t, %t : !tile.tile<4xf32>
  func.return %q, %s : f32, !tile.tile<4xf32>
}

// -----

/// [Pattern: FoldScalarIdentity] IN: x + 0, 0 + x, x - 0, x * 1, 1 * x on i32  OUT: x. Why: offsets like `i * 1 + 0` from the front end.
// CHECK-LABEL: func.func @fold_i32_identities
//  CHECK-SAME:   (%[[K:[^:]+]]: i32)
//   CHECK-NOT:   tile.
//       CHECK:   func.return %[[K]], %[[K]], %[[K]], %[[K]], %[[K]]
func.func @fold_i32_identities(%k: i32) -> (i32, i32, i32, i32, i32) {
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %a = tile.add %k, %c0 : i32
  %b = tile.add %c0, %k : i32
  %s = tile.sub %k, %c0 : i32
  %m = tile.mul %k, %c1 : i32
  %n = tile.mul %c1, %k : i32
  func.return %a, %b, %s, %m, %n : i32, i32, i32, i32, i32
}

// -----

/// [Pattern: FoldScalarIdentity] Floats: x + -0.0, x - 0.0 and x * 1.0 are x for every x.
// CHECK-LABEL: func.func @fold_f32_identities
//  CHECK-SAME:   (%[[X:[^:]+]]: f32)
//   CHECK-NOT:   tile.
//       CHECK:   func.return %[[X]], %[[X]], %[[X]]
func.func @fold_f32_identities(%x: f32) -> (f32, f32, f32) {
  %nz = arith.constant -0.0 : f32
  %z = arith.constant 0.0 : f32
  %one = arith.constant 1.0 : f32
  %a = tile.add %x, %nz : f32
  %s = tile.sub %x, %z : f32
  %m = tile.mul %x, %one : f32
  func.return %a, %s, %m : f32, f32, f32
}

// -----

/// [Pattern: FoldScalarIdentity] Negative: x + 0.0 is +0.0 for x = -0.0, 0 - x is not x, and tiles are left alone.
// CHECK-LABEL: func.func @negative_fold_identities
//       CHECK:   tile.add
//       CHECK:   tile.sub
//       CHECK:   tile.mul
func.func @negative_fold_identities(%x: f32, %k: i32, %t: !tile.tile<4xi32>) -> (f32, i32, !tile.tile<4xi32>) {
  %z = arith.constant 0.0 : f32
  %c0 = arith.constant 0 : i32
  %c1 = arith.constant 1 : i32
  %ones = tile.splat %c1 : i32 -> !tile.tile<4xi32>
  %a = tile.add %x, %z : f32
  %s = tile.sub %c0, %k : i32
  %m = tile.mul %t, %ones : !tile.tile<4xi32>
  func.return %a, %s, %m : f32, i32, !tile.tile<4xi32>
}

// -----

/// [CSE] IN: tile.splat of one scalar twice  OUT: one splat. Why: the front end splats each scalar operand where it is used.
// CHECK-LABEL: func.func @cse_duplicate_splat
//  CHECK-SAME:   (%[[X:[^:]+]]: f32)
//  CHECK-NEXT:   %[[SPLAT:.*]] = tile.splat %[[X]]
//  CHECK-NEXT:   func.return %[[SPLAT]], %[[SPLAT]]
func.func @cse_duplicate_splat(%x: f32) -> (!tile.tile<64xf32>, !tile.tile<64xf32>) {
  %s1 = tile.splat %x : f32 -> !tile.tile<64xf32>
  %s2 = tile.splat %x : f32 -> !tile.tile<64xf32>
  func.return %s1, %s2 : !tile.tile<64xf32>, !tile.tile<64xf32>
}

// -----

/// [DCE] Unused pure ops (and the constants only they used) are erased; stores stay.
// CHECK-LABEL: func.func @dce_unused_pure_ops
//   CHECK-NOT:   tile.splat
//   CHECK-NOT:   arith.constant
//       CHECK:   tile.store
func.func @dce_unused_pure_ops(%Y: !tile.tensor<?xf32>, %t: !tile.tile<64xf32>, %i: i32) {
  %c = arith.constant 2.0 : f32
  %dead = tile.splat %c : f32 -> !tile.tile<64xf32>
  tile.store %Y[%i], %t : !tile.tensor<?xf32>, !tile.tile<64xf32>
  func.return
}
