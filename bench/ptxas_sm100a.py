"""ptxas -v resource usage of the examples compiled for sm_100a (tcgen05 matmuls), next to the
same kernels with `TILEC_PTX_TCGEN05=0` (mma.sync on sm_100a).  No GPU needed.  "16-B rows":
tensors whose rows are 16-byte aligned (`TensorSpec.div16`, what the launch sees for most
arrays), so the matmul K loop runs as the TMA pipeline; otherwise operands go through registers.

    python bench/ptxas_sm100a.py            # prints the markdown table of bench/RESULTS.md
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _example(name: str):
    spec = importlib.util.spec_from_file_location(f"ex_{name}", ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def configs():
    from tilec import dtypes as dt
    from tilec.frontend.tracer import ConstantSpec as C, ScalarSpec as S, TensorSpec

    def t(d, rank, div16=False):
        return TensorSpec(d, (None,) * rank, div16=div16)

    mm = [t(dt.float16, 2), t(dt.float16, 2), t(dt.float32, 2)]
    mm16 = [t(dt.float16, 2, True), t(dt.float16, 2, True), t(dt.float32, 2, True)]
    mmf32 = [t(dt.float32, 2), t(dt.float32, 2), t(dt.float32, 2)]
    mrd = mm + [S(dt.float32), S(dt.float32), S(dt.int32)]
    fa = [t(dt.float16, 4)] * 4 + [S(dt.float32)]
    yield "matmul f16", "matmul", "matmul_kernel", mm + [C(128), C(64), C(32)], 4
    yield "matmul f16", "matmul", "matmul_kernel", mm + [C(128), C(128), C(64)], 4
    yield "matmul f16", "matmul", "matmul_kernel", mm + [C(128), C(256), C(64)], 8
    yield "matmul f16, 16-B rows", "matmul", "matmul_kernel", mm16 + [C(128), C(64), C(32)], 4
    yield "matmul f16, 16-B rows", "matmul", "matmul_kernel", mm16 + [C(128), C(128), C(64)], 4
    yield "matmul f16, 16-B rows", "matmul", "matmul_kernel", mm16 + [C(128), C(128), C(64)], 8
    yield "matmul f32 (3xTF32)", "matmul", "matmul_kernel", mmf32 + [C(128), C(64), C(32)], 4
    yield "matmul_relu_dropout f16", "matmul_relu_dropout", "matmul_relu_scale_dropout", mrd + [C(128), C(64), C(32)], 4
    mrd16 = mm16 + [S(dt.float32), S(dt.float32), S(dt.int32)]
    yield "matmul_relu_dropout f16, 16-B rows", "matmul_relu_dropout", "matmul_relu_scale_dropout", \
        mrd16 + [C(128), C(64), C(32)], 4
    yield "flash_attention f16 causal", "flash_attention", "flash_attention_fwd", fa + [C(128), C(64), C(64), C(True)], 8
    yield "flash_attention f16 causal", "flash_attention", "flash_attention_fwd", fa + [C(128), C(64), C(32), C(True)], 4


def measure(kernel, specs, num_warps: int) -> dict:
    from tilec.backends.ptx.ptxas import assemble
    from tilec.driver import CompileOptions, compile_kernel

    gpu = compile_kernel(kernel, specs, "sm_100a", CompileOptions(num_warps=num_warps)).gpu
    _, info = assemble(gpu.ptx, "sm_100a", verbose=True)
    regs = int(re.search(r"Used (\d+) registers", info).group(1))
    spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", info)
    static = re.search(r"(\d+) bytes smem", info)
    tmem = re.search(r"allocates (\d+) TMEM columns", gpu.ptx)
    pipe = re.search(r"tcgen05 pipeline \d+: (\d+) stages", gpu.ptx)
    path = f"TMA, {pipe.group(1)} stages" if pipe else ("registers" if "tcgen05.mma" in gpu.ptx else "-")
    return {"path": path, "regs": regs, "spill": f"{spill.group(1)}/{spill.group(2)}", "static": int(static.group(1)) if static else 0,
            "dyn": gpu.smem_bytes, "tmem": int(tmem.group(1)) if tmem else 0,
            "mma": gpu.ptx.count("tcgen05.mma.cta_group")}


def main() -> None:
    from tilec.backends.ptx.ptxas import ptxas_version

    print(f"ptxas {ptxas_version()}, `ptxas -v --gpu-name sm_100a`\n")
    print("| kernel | BM x BN x BK (or BM, BN, D) | warps | operands | registers | spill st/ld (B) "
          "| smem static + dynamic (B) | TMEM cols | tcgen05.mma instrs | `TILEC_PTX_TCGEN05=0` build (mma.sync; FMA "
          "for f32): registers, spill st/ld |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, ex, kname, specs, nw in configs():
        kernel = getattr(_example(ex), kname)
        r = measure(kernel, specs, nw)
        os.environ["TILEC_PTX_TCGEN05"] = "0"
        try:
            base = measure(kernel, specs, nw)
        finally:
            del os.environ["TILEC_PTX_TCGEN05"]
        tile = "x".join(str(s.value) for s in specs if type(s).__name__ == "ConstantSpec" and not isinstance(s.value, bool))
        print(f"| {label} | {tile} | {nw} | {r['path']} | {r['regs']} | {r['spill']} | {r['static']} + {r['dyn']} | {r['tmem']} "
              f"| {r['mma']} | {base['regs']}, {base['spill']} |")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
