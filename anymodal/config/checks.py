"""Checks of a parsed config beyond its types: value ranges, training settings, every name and
options block against the plugin registry, and the tensor layouts the plugins declare. Each returns
Issues, so all problems are reported at once."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from anymodal.config.device import device_name_problem
from anymodal.config.parse import get_key, under
from anymodal.config.schema import LLMConfig, ModelConfig
from anymodal.config.validate import Issue, find_issues
from anymodal.contract.layouts import layout_disagreement
from anymodal.contract.wording import did_you_mean

if TYPE_CHECKING:
    from anymodal.contract.registry import Registry

_PLUGINS_HINT = "run `anymodal plugins` to see what is installed"

_RANGES: list[tuple[str, Any, str]] = [
    ("generation.max_new_tokens", lambda v: v >= 1, "must be at least 1"),
    ("generation.temperature", lambda v: v >= 0, "must be 0 or more (0 means greedy)"),
    ("generation.top_p", lambda v: 0 < v <= 1, "must be more than 0 and at most 1"),
    ("generation.kv_cache_mb", lambda v: v >= 0, "must be 0 (no reuse) or more"),
    ("generation.max_batch", lambda v: v >= 1, "must be 1 (one reply at a time) or more"),
    ("generation.batch_wait_ms", lambda v: v >= 0, "must be 0 or more"),
    ("bind.eval_fraction", lambda v: 0 <= v < 1, "must be 0 (no held-out split) or more, and below 1"),
    ("bind.logit_scale", lambda v: 0 < v <= 100, "must be more than 0 and at most 100 (ImageBind's clamp)"),
    ("bind.queue_size", lambda v: v >= 0, "must be 0 (in-batch negatives only) or more"),
    ("model.max_input_mb", lambda v: v > 0, "must be more than 0"),
    ("train.epochs", lambda v: v >= 1, "must be at least 1"),
    ("train.max_steps", lambda v: v >= 1, "must be at least 1"),
    ("train.batch_size", lambda v: v >= 1, "must be at least 1"),
    ("train.grad_accum", lambda v: v >= 1, "must be at least 1"),
    ("train.max_grad_norm", lambda v: v >= 0, "must be 0 (no clipping) or more"),
    ("train.log_every", lambda v: v >= 1, "must be at least 1"),
    ("train.eval_every", lambda v: v >= 0, "must be 0 (only at the end) or more"),
    ("train.save_every", lambda v: v >= 0, "must be 0 (only at the end) or more"),
    ("train.keep_checkpoints", lambda v: v >= 0, "must be 0 (keep all) or more"),
    ("train.num_workers", lambda v: v >= 0, "must be 0 or more"),
    ("train.data.max_length", lambda v: v >= 8, "must be at least 8"),
    ("train.data.eval_fraction", lambda v: 0 <= v < 1, "must be at least 0 and less than 1"),
    ("train.optimizer.lr", lambda v: v > 0, "must be more than 0"),
    ("train.optimizer.weight_decay", lambda v: v >= 0, "must be 0 or more"),
    ("train.schedule.warmup_steps", lambda v: v >= 0, "must be 0 or more"),
    ("train.schedule.warmup_ratio", lambda v: 0 <= v < 1, "must be at least 0 and less than 1"),
    ("train.schedule.min_lr_ratio", lambda v: 0 <= v <= 1, "must be between 0 and 1"),
    ("train.lora.r", lambda v: v >= 1, "must be at least 1"),
    ("train.lora.dropout", lambda v: 0 <= v < 1, "must be at least 0 and less than 1"),
]


def value_issues(data: Mapping[str, Any]) -> list[Issue]:
    issues = []
    for key, ok, rule in _RANGES:
        value = get_key(data, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and not ok(value):
            issues.append(Issue(key, f"{key}: {rule}, got {value!r}"))
    for key in ("model.device", "model.encoder_device"):
        device = get_key(data, key)
        problem = device_name_problem(device) if isinstance(device, str) else None
        if problem:
            issues.append(Issue(key, f"{key}: {problem}"))
    for key in ("model.span_open", "model.span_close"):
        span = get_key(data, key)
        if isinstance(span, str):
            try:
                span.format(name="x")
            except (KeyError, IndexError, ValueError):
                issues.append(
                    Issue(
                        key,
                        f"{key}: {span!r} is not a valid span: use {{name}} for the modality "
                        "name and {{ }} for literal braces",
                    )
                )
    return issues + _train_issues(data) + _routing_issues(data)


def _routing_issues(data: Mapping[str, Any]) -> list[Issue]:
    """``model.modalities.<name>.projector.from`` names another enabled modality, itself not routed."""
    modalities = get_key(data, "model.modalities")
    if not isinstance(modalities, Mapping):
        return []
    issues = []
    for name, block in modalities.items():
        source = get_key(block, "projector.from") if isinstance(block, Mapping) else None
        norm = get_key(block, "projector.norm") if isinstance(block, Mapping) else None
        if norm is not None and not isinstance(source, str):
            key = f"model.modalities.{name}.projector.norm"
            issues.append(
                Issue(
                    key,
                    f"{key}: scales the pooled embedding for another modality's projector; set "
                    "projector.from too",
                )
            )
        elif isinstance(norm, (int, float)) and not isinstance(norm, bool) and norm <= 0:
            key = f"model.modalities.{name}.projector.norm"
            issues.append(Issue(key, f"{key}: must be more than 0, got {norm}"))
        if not isinstance(source, str):
            continue
        key = f"model.modalities.{name}.projector.from"
        other = modalities.get(source)
        if source == name:
            issues.append(Issue(key, f"{key}: {name} cannot take its own projector"))
        elif source not in modalities:
            enabled = ", ".join(n for n in modalities if n != name) or "none"
            guess = did_you_mean(source, list(modalities))
            issues.append(Issue(key, f"{key}: {source} is not enabled (enabled: {enabled}){guess}"))
        elif isinstance(other, Mapping) and isinstance(get_key(other, "projector.from"), str):
            further = get_key(other, "projector.from")
            issues.append(Issue(key, f"{key}: {source} itself takes {further}'s projector; name {further}"))
        elif set_too := [p for p in ("name", "weights", "options") if get_key(block, f"projector.{p}")]:
            named = " and ".join(f"projector.{part}" for part in set_too)
            verb, pronoun = ("is", "it") if len(set_too) == 1 else ("are", "them")
            message = f"{key}: the projector is {source}'s, but {named} {verb} set too; set {pronoun} to null"
            issues.append(Issue(key, message))
    return issues


def _train_issues(data: Mapping[str, Any]) -> list[Issue]:
    issues = []
    betas = get_key(data, "train.optimizer.betas")
    if isinstance(betas, list) and (
        len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas)
    ):
        issues.append(
            Issue(
                "train.optimizer.betas", f"train.optimizer.betas: must be two numbers in [0, 1), got {betas}"
            )
        )
    projectors, modalities = get_key(data, "train.projectors"), get_key(data, "model.modalities")
    if isinstance(projectors, list) and isinstance(modalities, Mapping):
        for name in projectors:
            if name not in modalities:
                enabled = ", ".join(map(str, modalities)) or "none"
                issues.append(
                    Issue(
                        "train.projectors",
                        f"train.projectors: {name!r} is not an enabled modality"
                        f"{did_you_mean(str(name), modalities)} (enabled: {enabled})",
                    )
                )
    return issues


def drop_uninstalled_optional(data: dict[str, Any], registry: Registry) -> tuple[str, ...]:
    """Remove the modalities marked ``optional: true`` that no installed plugin provides; their names."""
    modalities = get_key(data, "model.modalities")
    if not isinstance(modalities, dict):
        return ()
    dropped = tuple(
        str(name)
        for name, block in modalities.items()
        if isinstance(block, Mapping) and block.get("optional") is True and name not in registry.modalities
    )
    for name in dropped:
        del modalities[name]
    return dropped


def registry_issues(data: Mapping[str, Any], registry: Registry) -> list[Issue]:
    issues = []
    bridge = get_key(data, "model.llm.bridge")
    bridge = LLMConfig.bridge if bridge is None else bridge  # the default must be installed too
    if isinstance(bridge, str) and bridge not in registry.bridges:
        # The default bridge ships as its own distribution; say which when it is the one missing.
        what = "bridge 'hf' is not installed: anymodal install anymodal-hf" if bridge == "hf" else None
        issues.append(_unknown("model.llm.bridge", "bridge", bridge, registry.bridges, registry, what))
    template = get_key(data, "model.template")
    if (
        isinstance(template, str)
        and template not in ("auto", "tokenizer")
        and template not in registry.templates
    ):
        issues.append(_unknown("model.template", "template", template, registry.templates, registry))
    fallback = get_key(data, "model.fallback_template")
    if isinstance(fallback, str) and fallback not in registry.templates:
        issues.append(_unknown("model.fallback_template", "template", fallback, registry.templates, registry))
    modalities = get_key(data, "model.modalities")
    for name, block in modalities.items() if isinstance(modalities, Mapping) else ():
        issues += _modality_issues(str(name), block, registry)
    return issues


def _modality_issues(name: str, block: Any, registry: Registry) -> list[Issue]:
    key = f"model.modalities.{name}"
    spec = registry.modalities.get(name)
    issues = [] if spec else [_unknown(key, "modality", name, registry.modalities, registry)]
    if not isinstance(block, Mapping):
        return issues
    for part, table in (("encoder", registry.encoders), ("projector", registry.projectors)):
        section = block.get(part, {})
        if not isinstance(section, Mapping) or not isinstance(section.get("name"), (str, type(None))):
            continue  # a schema problem, already reported
        chosen = section.get("name") or (getattr(spec, f"default_{part}") if spec else None)
        if chosen is None:
            continue
        part_spec = table.get(chosen)
        if part_spec is None:
            default = f"modality {name!r} defaults to {part} {chosen!r}, which is not installed"
            what = None if section.get("name") else default
            issues.append(_unknown(f"{key}.{part}.name", part, chosen, table, registry, what))
            continue
        supported = getattr(part_spec, "modalities", ())
        if supported and name not in supported:
            issues.append(
                Issue(
                    f"{key}.{part}.name",
                    f"{key}.{part}.name: {part} {chosen!r} does not support "
                    f"modality {name!r} (it supports {', '.join(supported)})",
                )
            )
        options = section.get("options", {})
        if isinstance(options, Mapping):
            issues += _options_issues(part, chosen, part_spec.options, options, f"{key}.{part}.options")
    preprocess = block.get("preprocess", {})
    if spec is not None and isinstance(preprocess, Mapping):
        issues += _preprocess_issues(spec.preprocess, preprocess, f"{key}.preprocess")
    return issues


def layout_issues(model: ModelConfig, registry: Registry) -> list[Issue]:
    """Modalities whose preprocessing emits a tensor layout that their encoder does not take, where
    both declare one (``ModalitySpec.emits``, ``EncoderSpec.takes``). Run on the built config, once
    every name is pinned and every options block is its dataclass: what the encoder is built with."""
    issues = []
    for name, modality in model.modalities.items():
        key = f"model.modalities.{name}"
        spec, encoder = registry.modalities[name], registry.encoders[modality.encoder.name or ""]
        options = modality.encoder.options or None  # as the encoder's build gets them
        try:
            problem = layout_disagreement(spec, modality.preprocess, encoder, options)
        except (TypeError, ValueError) as error:  # an option value the plugin's declaration cannot use
            problem = f"cannot work out the layouts its preprocessing and encoder declare: {error}"
        if problem:
            issues.append(Issue(key, f"{key}: {problem}"))
    return issues


def _preprocess_issues(function: Any, options: Mapping[str, Any], key: str) -> list[Issue]:
    """Option keys the preprocessor's signature does not take (skipped when it takes ``**kwargs``).

    Values are the plugin's to check: it knows their meaning and raises on bad ones."""
    try:
        parameters = list(inspect.signature(function).parameters.values())[1:]  # [0] is the decoded input
    except (TypeError, ValueError):  # a builtin or C function: nothing to read
        return []
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return []
    known = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return [
        Issue(
            f"{key}.{option}",
            f"unknown key '{key}.{option}'{did_you_mean(str(option), known)} "
            f"(the preprocessor takes: {', '.join(known) or 'no options'})",
        )
        for option in options
        if option not in known
    ]


def _options_issues(
    kind: str, name: str, options_cls: type | None, options: Mapping[str, Any], key: str
) -> list[Issue]:
    if options_cls is None:
        if options:
            given = ", ".join(str(k) for k in options)
            return [Issue(key, f"{key}: {kind} {name!r} takes no options, got {given}")]
        return []
    try:
        return find_issues(options_cls, options, key)
    except TypeError as error:  # the plugin's options class cannot be introspected: its bug
        return [Issue(key, f"{key}: cannot check the options of {kind} {name!r}: {error}")]


def _unknown(
    key: str, kind: str, name: str, table: Mapping[str, Any], registry: Registry, what: str | None = None
) -> Issue:
    """``<key>: unknown <kind> 'x' (did you mean 'y'?); installed <kind>s: ...`` and the plugins hint."""
    installed = ", ".join(sorted(table)) or "none"
    failed = f"; {len(registry.failed)} plugin(s) failed to load" if registry.failed else ""
    what = what or f"unknown {kind} {name!r}{did_you_mean(name, table)}"
    kinds = "modalities" if kind == "modality" else f"{kind}s"
    text = f"{key}: {what}; installed {kinds}: {installed}{failed} ({_PLUGINS_HINT})"
    return Issue(key, text)


def annotate(issue: Issue, parsed: list[tuple[str, str, DictConfig]]) -> str:
    # The last override of a key wins, so it is the one to blame.
    for key, text, _ in reversed(parsed):
        if under(issue.key, key) or under(key, issue.key):
            return f"{issue.text} (from override {text!r})"
    return issue.text
