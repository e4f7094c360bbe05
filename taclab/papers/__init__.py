"""Paper packages: what is specific to one paper (tasks, labels, formats, tables, the paper's numbers, its demo
and commands). Importing ``taclab.papers`` registers what each paper adds to the generic registries (policies,
dataset generators, learning specs, task lists, reports) and fills :data:`DEMOS` and :data:`RENDERERS`, which the
command line's ``taclab demo`` and ``taclab render`` dispatch to."""

from __future__ import annotations

from collections.abc import Callable

from taclab.papers import tla, touchr1, vital, vtrefine
from taclab.papers.tla import demo as _tla_demo
from taclab.papers.tla import render as _tla_render
from taclab.papers.touchr1 import demo as _touchr1_demo
from taclab.papers.vital import demo as _vital_demo
from taclab.papers.vital import render as _vital_render
from taclab.papers.vtrefine import demo as _vtrefine_demo
from taclab.papers.vtrefine import render as _vtrefine_render

DEMOS: dict[str, Callable[..., dict]] = {
    "tla": _tla_demo.demo,
    "touchr1": _touchr1_demo.demo,
    "vital": _vital_demo.demo,
    "vtrefine": _vtrefine_demo.demo,
}
"""``demo(out, seed=, workers=, config=) -> summary`` per paper (``taclab demo [PAPER...]``)."""

RENDERERS: dict[str, Callable[..., list]] = {
    "peg": _tla_render.render_examples,
    "vtrefine": _vtrefine_render.render_scene,
    **_vital_render.RENDERERS,
}
"""``render(out, seed=, **kwargs) -> [png paths]`` per task name (``taclab render --task NAME``)."""

__all__ = ["DEMOS", "RENDERERS", "tla", "touchr1", "vital", "vtrefine"]
