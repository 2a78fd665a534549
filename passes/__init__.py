"""The tilec pass registry: pass name -> factory returning the `ModulePass` class.

Factories import their module only when called, so importing this package (and
listing the passes) costs nothing.  xDSL's own `canonicalize`, `cse` and `dce` are
registered under their xDSL names so that one pipeline string can mix both::

    from tilec.passes import get_pass
    get_pass("tile-canonicalize")().apply(ctx, module)
    PassPipeline.parse_spec(PASSES, "tile-canonicalize,cse,tile-verify")
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xdsl.passes import ModulePass


def _tile_canonicalize() -> type[ModulePass]:
    from tilec.passes.canonicalize import TileCanonicalizePass

    return TileCanonicalizePass


def _tile_verify() -> type[ModulePass]:
    from tilec.passes.verify import TileVerifyPass

    return TileVerifyPass


def _tile_select_mma() -> type[ModulePass]:
    from tilec.passes.select_mma import TileSelectMmaPass

    return TileSelectMmaPass


def _tile_promote_smem() -> type[ModulePass]:
    from tilec.passes.promote_smem import TilePromoteSmemPass

    return TilePromoteSmemPass


def _tile_async_copy() -> type[ModulePass]:
    from tilec.passes.async_copy import TileAsyncCopyPass

    return TileAsyncCopyPass


def _tile_pipeline_cp_async() -> type[ModulePass]:
    from tilec.passes.pipeline_cp_async import TilePipelineCpAsyncPass

    return TilePipelineCpAsyncPass


def _tile_attention_wgmma() -> type[ModulePass]:
    from tilec.passes.attention_wgmma import TileAttentionWgmmaPass

    return TileAttentionWgmmaPass


def _tile_w4a16() -> type[ModulePass]:
    from tilec.passes.w4a16 import TileW4A16Pass

    return TileW4A16Pass


def _canonicalize() -> type[ModulePass]:
    from xdsl.transforms.canonicalize import CanonicalizePass

    return CanonicalizePass


def _cse() -> type[ModulePass]:
    from xdsl.transforms.common_subexpression_elimination import CommonSubexpressionElimination

    return CommonSubexpressionElimination


def _dce() -> type[ModulePass]:
    from xdsl.transforms.dead_code_elimination import DeadCodeElimination

    return DeadCodeElimination


#: the passes tilec defines: name -> lazy factory.
TILEC_PASSES: dict[str, Callable[[], type[ModulePass]]] = {
    "tile-canonicalize": _tile_canonicalize,
    "tile-verify": _tile_verify,
    "tile-select-mma": _tile_select_mma,
    "tile-promote-smem": _tile_promote_smem,
    "tile-async-copy": _tile_async_copy,
    "tile-w4a16": _tile_w4a16,
    "tile-attention-wgmma": _tile_attention_wgmma,
    "tile-pipeline-cp-async": _tile_pipeline_cp_async,
}
#: the xDSL passes tilec pipelines use, under their xDSL names.
def _licm() -> type[ModulePass]:
    from xdsl.transforms.loop_invariant_code_motion import LoopInvariantCodeMotionPass

    return LoopInvariantCodeMotionPass


XDSL_PASSES: dict[str, Callable[[], type[ModulePass]]] = {
    "canonicalize": _canonicalize,
    "licm": _licm,
    "cse": _cse,
    "dce": _dce,
}
#: every registered pass: tilec's first, then xDSL's.
PASSES: dict[str, Callable[[], type[ModulePass]]] = TILEC_PASSES | XDSL_PASSES


def get_pass(name: str) -> type[ModulePass]:
    """The pass class registered as `name`; `KeyError` naming the known passes otherwise."""
    try:
        factory = PASSES[name]
    except KeyError:
        raise KeyError(f"unknown pass {name!r}; available passes: {', '.join(available_passes())}") from None
    return factory()


def available_passes() -> list[str]:
    """Registered pass names, in registration order (tilec passes first)."""
    return list(PASSES)
