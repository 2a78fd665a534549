// RUN: tilec-opt %s --split-input-file --verify-diagnostics | filecheck %s
// RUN: tilec-opt %s --split-input-file --verify-diagnostics --debug | filecheck %s --check-prefix=DEBUG

/// tilec-opt's own verification (before the first pass) reports errors at the op's location;
/// --debug adds xDSL's generic IR dump with the failing op marked.
func.func @located_error(%X: !tile.tensor<?x?xf32>) {
  %n = tile.dim %X 2 : !tile.tensor<?x?xf32> loc("kernel.py":12:9)
  func.return
}
//       CHECK: kernel.py:12:9: error: 'tile.dim' op axis 2 is out of range for a rank-2 tensor
//   CHECK-NOT: Operation does not verify
//       DEBUG: kernel.py:12:9: error: 'tile.dim' op axis 2 is out of range
//       DEBUG: "tile.dim"(%X) <{axis = 2 : i64}>
//  DEBUG-NEXT: ^^^^
//  DEBUG-NEXT: | Operation does not verify: axis 2 is out of range for a rank-2 tensor
