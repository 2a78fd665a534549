"""The pass pipeline of each target, as data (`tilec compile --print-pipeline` shows it).

A target's list runs on the traced `tile` IR in order; each entry is a registered pass
name with optional `{key=value}` options.  GPU targets add their lowerings here without
touching the front end.
"""

from __future__ import annotations

PIPELINES: dict[str, tuple[str, ...]] = {
    "cpu": ("tile-canonicalize",),
}

ALIASES = {"sm_100": "sm_100a", "sm_90": "sm_90a", "hopper": "sm_90a", "blackwell": "sm_100a"}

GPU_TARGETS = ("sm_80", "sm_90a", "sm_100a")


def canonical_target(target: str) -> str:
    return ALIASES.get(target, target)


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
