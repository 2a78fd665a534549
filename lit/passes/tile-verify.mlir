// RUN: tilec-opt %s --split-input-file --disable-verify -p tile-verify --verify-diagnostics | filecheck %s

/// tile-verify reports the failing op at its own source location (--disable-verify turns
/// off tilec-opt's verification around passes, so these errors come from the pass).
func.func @error_at_op_location(%X: !tile.tensor<?x?xf32>) {
  %n = tile.dim %X 2 : !tile.tensor<?x?xf32> loc("kernel.py":12:9)
  func.return
}
// CHECK: kernel.py:12:9: error: 'tile.dim' op axis 2 is out of range for a rank-2 tensor

// -----

/// An op without a location is reported at the nearest enclosing op that has one.
func.func @error_at_enclosing_location(%X: !tile.tensor<?x?xf32>) {
  %n = tile.dim %X 2 : !tile.tensor<?x?xf32>
  func.return
} loc("kernel.py":3:1)
// CHECK: kernel.py:3:1: error: 'tile.dim' op axis 2 is out of range for a rank-2 tensor

// -----

/// Ops nested in regions (scf.for) are found too.
func.func @error_in_nested_region(%X: !tile.tensor<?x?xf32>, %lb: index) {
  scf.for %i = %lb to %lb step %lb {
    %n = tile.dim %X 2 : !tile.tensor<?x?xf32> loc("kernel.py":20:11)
  }
  func.return
}
// CHECK: kernel.py:20:11: error: 'tile.dim' op axis 2 is out of range for a rank-2 tensor

// -----

/// Name locations are looked through to the file location inside.
func.func @error_at_name_location(%X: !tile.tensor<?x?xf32>) {
  %n = tile.dim %X 2 : !tile.tensor<?x?xf32> loc("n"("kernel.py":7:5))
  func.return
}
// CHECK: kernel.py:7:5: error: 'tile.dim' op axis 2 is out of range for a rank-2 tensor

// -----

/// A fused location reports its first file location.
func.func @error_at_fused_location(%X: !tile.tensor<?x?xf32>) {
  %n = tile.dim %X 2 : !tile.tensor<?x?xf32> loc(fused["kernel.py":8:3, "other.py":1:1])
  func.return
}
// CHECK: kernel.py:8:3: error: 'tile.dim' op axis 2 is out of range for a rank-2 tensor

// -----

/// With no location anywhere, the message has no position.
func.func @error_without_location(%X: !tile.tensor<?x?xf32>) {
  %n = tile.dim %X 2 : !tile.tensor<?x?xf32>
  func.return
}
// CHECK: {{^}}error: 'tile.dim' op axis 2 is out of range for a rank-2 tensor

// -----

/// Valid IR passes through unchanged.
// CHECK-LABEL: func.func @valid_module_unchanged
//  CHECK-NEXT:   %{{.*}} = tile.dim %{{.*}} 1 : !tile.tensor<?x?xf32>
func.func @valid_module_unchanged(%X: !tile.tensor<?x?xf32>) {
  %n = tile.dim %X 1 : !tile.tensor<?x?xf32> loc("kernel.py":12:9)
  func.return
}
