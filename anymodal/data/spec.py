"""The generation spec of ``anymodal data generate SPEC``: which annotations, which kinds of data,
which teacher. A YAML file validated against these dataclasses before any request is sent, every
problem reported at once, ``key=value`` overrides applied as for every config::

    annotations: annotations.jsonl      # relative to the spec's folder
    kinds: [conversation, detail, reasoning]
    teacher: {url: "http://127.0.0.1:8000/v1", model: gpt-4o-mini}
    define:                             # kinds of your own, beside the built-in ones
      sound_story:
        system: "You hear a sound described by the annotations below. ..."
        examples: [{context: "captions: a dog barks", reply: "Question: ...\\n===\\nAnswer: ..."}]
        reply: conversation
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from anymodal.config.parse import parse_overrides, read_yaml
from anymodal.config.validate import build
from anymodal.contract.errors import ConfigError, UsageError
from anymodal.contract.wording import did_you_mean
from anymodal.data.kinds import BUILTIN_KINDS, KindSpec
from anymodal.data.teacher import TeacherOptions


@dataclass(frozen=True)
class Price:
    """What the teacher costs, in any currency, per million tokens; for the run's cost estimate."""

    prompt_per_million: float = 0.0
    completion_per_million: float = 0.0


@dataclass(frozen=True)
class TeacherSpec(TeacherOptions):
    """The teacher: an OpenAI-compatible chat completions endpoint; the key is read from the
    environment variable ``key_env`` (unset: no key is sent, as local servers want)."""

    url: str | None = None
    model: str | None = None
    price: Price = field(default_factory=Price)


@dataclass(frozen=True)
class GenerateSpec:
    """The whole spec; ``annotations`` and ``media_root`` are relative to the spec's folder."""

    annotations: str
    kinds: list[str] = field(default_factory=lambda: ["conversation", "detail", "reasoning"])
    teacher: TeacherSpec = field(default_factory=TeacherSpec)
    define: dict[str, KindSpec] = field(default_factory=dict)
    media_root: str | None = None
    concurrency: int = 4
    #: Two replies of one kind whose word-trigram sets overlap this much (Jaccard) are duplicates.
    near_duplicate: float = 0.85
    seed: int = 0


@dataclass(frozen=True)
class LoadedSpec:
    """The spec, its file, and the paths it names made absolute."""

    spec: GenerateSpec
    file: Path
    annotations: Path
    media_root: Path


def load_spec(file: str | Path, overrides: Sequence[str] = ()) -> LoadedSpec:
    """Read, override and validate a spec; a ConfigError lists every problem, naming its key."""
    path = Path(file)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "not found"
        raise UsageError(f"generation spec {what}: {path}", hint="give the YAML file; see docs/data.md")
    document = read_yaml(path)
    for _, _, parsed in parse_overrides(overrides):
        document = OmegaConf.merge(document, parsed)  # type: ignore[assignment]
    data: Any = OmegaConf.to_container(document, resolve=True)
    try:
        spec = build(GenerateSpec, data)
    except ConfigError as error:
        raise _spec_error(error.issues, path) from None
    _check(spec, path)
    base = path.parent
    annotations = (base / spec.annotations).resolve()
    media_root = (base / spec.media_root).resolve() if spec.media_root else annotations.parent
    return LoadedSpec(spec, path, annotations, media_root)


def _check(spec: GenerateSpec, path: Path) -> None:
    problems = []
    known = {**BUILTIN_KINDS, **spec.define}
    for name in spec.kinds:
        if name not in known:
            problems.append(
                f"kinds: unknown kind {name!r}{did_you_mean(name, known)} (known: {', '.join(known)})"
            )
    if not spec.kinds:
        problems.append("kinds: empty; name at least one kind to generate")
    for name, kind in spec.define.items():
        if kind.reply == "answer" and not kind.instructions:
            problems.append(f"define.{name}.instructions: a kind with reply: answer needs at least one")
    if spec.concurrency < 1:
        problems.append(f"concurrency: must be at least 1, got {spec.concurrency}")
    if not 0 < spec.near_duplicate <= 1:
        problems.append(f"near_duplicate: must be in (0, 1], got {spec.near_duplicate}")
    if problems:
        raise _spec_error(problems, path)


def _spec_error(problems: list[str], path: Path) -> ConfigError:
    error = ConfigError(problems, source=str(path))
    error.hint = "docs/data.md lists the spec's keys"
    return error
