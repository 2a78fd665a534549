// RUN: tilec-opt %s -p tile-canonicalize,cse --print-ir-after-all 2>&1 >/dev/null | filecheck %s --check-prefix=ALL
// RUN: tilec-opt %s -p tile-canonicalize,cse --print-ir-after=cse 2>&1 >/dev/null | filecheck %s --check-prefix=ONE
// RUN: tilec-opt %s -p tile-canonicalize | filecheck %s --check-prefix=STDOUT
// RUN: tilec-opt --help | filecheck %s --check-prefix=HELP
// RUN: tilec-opt --help-pass tile-canonicalize | filecheck %s --check-prefix=HELP-PASS

/// --print-ir-after-all dumps to stderr after every pass, under MLIR's banner.
// ALL: // -----// IR Dump After tile-canonicalize //----- //
// ALL-NEXT: builtin.module {
// ALL: tile.matmul %{{.*}}, %{{.*}}, %{{.*}} :
// ALL: // -----// IR Dump After cse //----- //

/// --print-ir-after=PASS dumps only after that pass.
//  ONE-NOT: IR Dump After tile-canonicalize
//      ONE: // -----// IR Dump After cse //----- //

/// stdout holds only the final IR.
//  STDOUT-NOT: IR Dump
//      STDOUT: func.func @fused

/// --help lists the tilec passes with their summary line; --help-pass prints the whole doc.
// HELP: tilec passes
// HELP: tile-canonicalize {{ +}}fold tile-level algebra
// HELP: tile-verify
// HELP: xDSL passes:
// HELP-PASS: tile-canonicalize: fold tile-level algebra
// HELP-PASS: Input invariant:
// HELP-PASS: Before:

func.func @fused(%a: !tile.tile<64x32xf16>, %b: !tile.tile<32x64xf16>, %acc: !tile.tile<64x64xf32>) -> !tile.tile<64x64xf32> {
  %p = tile.matmul %a, %b : !tile.tile<64x32xf16>, !tile.tile<32x64xf16> -> !tile.tile<64x64xf32>
  %s = tile.add %acc, %p : !tile.tile<64x64xf32>
  func.return %s : !tile.tile<64x64xf32>
}
