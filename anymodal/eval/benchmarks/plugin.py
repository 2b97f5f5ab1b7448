"""Core's own benchmarks, registered through the same hook as any benchmark plugin's (the
``anymodal`` distribution's ``benchmarks`` entry point)."""

from __future__ import annotations

from collections.abc import Callable

from anymodal.contract.hookspecs import hookimpl
from anymodal.contract.specs import CONTRACT_VERSION

ANYMODAL_CONTRACT = CONTRACT_VERSION


@hookimpl
def register_benchmarks(register: Callable[..., None]) -> None:
    from anymodal.eval.benchmarks.captioning import AUDIOCAPS, CLOTHO
    from anymodal.eval.benchmarks.mme import MME
    from anymodal.eval.benchmarks.pope import POPE
    from anymodal.eval.benchmarks.scienceqa import SCIENCEQA

    for spec in (POPE, SCIENCEQA, MME, CLOTHO, AUDIOCAPS):
        register(spec)
