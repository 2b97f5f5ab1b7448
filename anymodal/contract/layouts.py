"""Whether a modality's preprocessing emits what its encoder takes, from the layouts both declare
(:class:`~anymodal.contract.specs.TensorLayout`): checked when a config is loaded, before any file
is read, and by the conformance suite, so that a plugin whose preprocessing emits 12 leads to an
encoder that reads 8 fails with a message naming both instead of a shape error deep in a forward.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from anymodal.contract.specs import EncoderSpec, ModalitySpec, TensorLayout


def layout_mismatch(emitted: TensorLayout, taken: TensorLayout) -> str | None:
    """Why a tensor of layout ``emitted`` does not fit where ``taken`` is read, e.g.
    ``"leads: 12 != 8"``; None when it fits. A None dim on either side fits any size."""
    reasons = []
    if len(emitted.dims) != len(taken.dims):
        reasons.append(f"rank: {len(emitted.dims)} != {len(taken.dims)}")
    else:
        names = emitted.names or taken.names
        for index, (mine, theirs) in enumerate(zip(emitted.dims, taken.dims, strict=True)):
            if mine is not None and theirs is not None and mine != theirs:
                reasons.append(f"{names[index] if names else f'dim {index}'}: {mine} != {theirs}")
    if emitted.dtype != taken.dtype:
        reasons.append(f"dtype: {emitted.dtype} != {taken.dtype}")
    return ", ".join(reasons) or None


def emitted_layout(spec: ModalitySpec, options: Mapping[str, Any]) -> TensorLayout | None:
    """The layout ``spec``'s preprocessing declares for the config's ``options``; None if it declares none."""
    return None if spec.emits is None else spec.emits(_with_defaults(spec.preprocess, options))


def declared_layouts(
    spec: ModalitySpec, preprocess: Mapping[str, Any], encoder: EncoderSpec, options: Any
) -> tuple[TensorLayout, TensorLayout] | None:
    """What the preprocessing emits for its ``preprocess`` options and what ``encoder`` takes for
    ``spec``'s modality and its ``options`` (as ``build`` gets them); None unless both declare one."""
    emitted = emitted_layout(spec, preprocess)
    taken = None if emitted is None or encoder.takes is None else encoder.takes(spec.name, options)
    return None if emitted is None or taken is None else (emitted, taken)


def layout_disagreement(
    spec: ModalitySpec, preprocess: Mapping[str, Any], encoder: EncoderSpec, options: Any
) -> str | None:
    """One line naming both sides when the preprocessing emits what ``encoder`` does not take:
    ``the ecg preprocessing emits [leads=12, samples=*] float32 but encoder ecg-net takes
    [leads=8, samples=*] float32 (leads: 12 != 8)``. None when they agree or either declares nothing."""
    declared = declared_layouts(spec, preprocess, encoder, options)
    if declared is None:
        return None
    emitted, taken = declared
    reason = layout_mismatch(emitted, taken)
    if reason is None:
        return None
    return (
        f"the {spec.name} preprocessing emits {emitted} but encoder {encoder.name} takes {taken} ({reason})"
    )


def _with_defaults(preprocess: Callable[..., Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` with the defaults of the keyword parameters of ``preprocess`` that it leaves out."""
    try:
        parameters = list(inspect.signature(preprocess).parameters.values())[1:]  # [0]: the decoded input
    except (TypeError, ValueError):  # a builtin or C function: nothing to read
        parameters = []
    defaults = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    return {**defaults, **options}
