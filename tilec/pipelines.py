"""The pass pipeline of each target, as data (`tilec compile --print-pipeline` shows it).

A target's list runs on the traced `tile` IR in order; each entry is a registered pass
name with optional `{key=value}` options.  GPU targets add their lowerings here without
touching the front end.
"""

from __future__ import annotations

#: target-independent clean-up of the traced IR: folds, hoisting of loop-invariant
#: scalar index math out of K loops, then CSE of what hoisting made identical.
TILE_LEVEL = ("tile-canonicalize", "licm", "cse")

#: sm_90a: each matmul's instruction is chosen, flash-attention loops run both matmuls on wgmma
#: with TMA-fed K / V rings, K loops of wgmma matmuls read their operands from 128B-swizzled
#: shared memory, filled by TMA through a multi-stage mbarrier pipeline.
SM90A_MATMUL = ("tile-select-mma{target=sm_90a}", "tile-attention-wgmma", "tile-promote-smem", "tile-async-copy")

#: sm_90a / sm_80: weight-only FP4 K loops (f16/bf16 x dequantized e2m1) become one
#: w4a16.mma_loop (cp.async ring, register decode, mma.sync) before the matmul passes.
PIPELINES: dict[str, tuple[str, ...]] = {
    "cpu": TILE_LEVEL,
    "sm_100a": (*TILE_LEVEL, "emit-ptx"),
    "sm_90a": (*TILE_LEVEL, "tile-w4a16{target=sm_90a}", *SM90A_MATMUL, "emit-ptx"),
    # sm_80: mma.sync K loops run as a cp.async pipeline (passes/pipeline_cp_async.py)
    "sm_80": (*TILE_LEVEL, "tile-w4a16{target=sm_80}", "tile-select-mma{target=sm_80}", "tile-pipeline-cp-async", "emit-ptx"),
}

#: Pipeline entries that are not IR passes but the backend's final stage (IR -> text):
#: the driver runs them after the passes (`emit-ptx`: backends/ptx/emitter.py).
FINAL_STAGES = ("emit-ptx",)

ALIASES = {"sm_100": "sm_100a", "sm_90": "sm_90a", "hopper": "sm_90a", "blackwell": "sm_100a"}

GPU_TARGETS = ("sm_80", "sm_90a", "sm_100a")


def canonical_target(target: str) -> str:
    return ALIASES.get(target, target)


def passes_for(target: str, num_stages: int | None = None) -> tuple[str, ...]:
    """The IR passes of `target`'s pipeline (without its final emission stage); `num_stages`
    (the kernel / launch option) sets the depth of `tile-async-copy`."""
    names = tuple(n for n in pipeline_for(target) if n not in FINAL_STAGES)
    if num_stages is not None:
        names = tuple(f"{n}{{num-stages={int(num_stages)}}}" if n in ("tile-async-copy", "tile-pipeline-cp-async")
                      else n for n in names)
        # tile-w4a16 carries a target option: the depth joins it
        names = tuple(n.replace("}", f" num-stages={int(num_stages)}}}") if n.startswith("tile-w4a16{") else n
                      for n in names)
    return names


def pipeline_for(target: str) -> tuple[str, ...]:
    """The pass names for `target`; a target without a pipeline is one clear error."""
    from tilec.errors import TilecError

    target = canonical_target(target)
    if target in PIPELINES:
        return PIPELINES[target]
    if target in GPU_TARGETS:
        raise TilecError(f"target '{target}' is not implemented yet in this build of tilec "
                         f"(available: {', '.join(sorted(PIPELINES))})")
    raise TilecError(f"unknown target '{target}'; expected one of "
                     f"{', '.join(sorted(set(PIPELINES) | set(GPU_TARGETS) | set(ALIASES)))}")
