"""Check a plain dict (parsed YAML) against a dataclass schema, reporting every problem at once.

The schema's type hints are the only source of truth: no per-field rules live here, so the same
walker validates the core schema and any plugin's ``options`` dataclass. Each problem is one line
naming its dotted key, e.g. ``generation.max_new_tokens: expected an integer, got 'abc'``.

Strictness follows YAML, not Python: a bool is not an integer (``true`` for a count is a
mistake), but an integer is a fine float (``temperature: 1``).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from anymodal.contract.errors import ConfigError
from anymodal.contract.wording import did_you_mean

T = TypeVar("T")

_NONE = type(None)


class Issue(NamedTuple):
    """One problem: the dotted key it concerns ("" for the whole document) and its one-line text."""

    key: str
    text: str

    def __str__(self) -> str:
        return self.text


def validate_against(schema: type, data: Any, path: str = "") -> list[str]:
    """Every problem with ``data`` as an instance of the dataclass ``schema``; empty when valid.

    ``path`` is the dotted key of ``data`` inside a larger document, used as a message prefix.
    """
    return [issue.text for issue in find_issues(schema, data, path)]


def find_issues(schema: Any, data: Any, path: str = "") -> list[Issue]:
    """Like :func:`validate_against`, keeping each problem's key (to say where it came from)."""
    issues: list[Issue] = []
    _check(schema, data, path, issues)
    return issues


def build(schema: type[T], data: Any) -> T:
    """The ``schema`` instance described by ``data``, nested dataclasses included.

    Raises :class:`ConfigError` listing every problem when ``data`` does not validate, so a
    caller can never get a half-checked instance.
    """
    issues = validate_against(schema, data)
    if issues:
        raise ConfigError(issues)
    return typing.cast(T, _build(schema, data))


# --- checking ---------------------------------------------------------------------------------


def _check(tp: Any, value: Any, path: str, issues: list[Issue]) -> None:
    if tp is Any or tp is object:
        return
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        _check_union(tp, value, path, issues)
    elif origin is typing.Literal:
        _check_literal(typing.get_args(tp), value, path, issues)
    elif dataclasses.is_dataclass(tp) and isinstance(tp, type):
        _check_dataclass(tp, value, path, issues)
    elif origin in (list, tuple, set, frozenset) or tp in (list, tuple, set, frozenset):
        _check_sequence(tp, value, path, issues)
    elif origin in (dict, Mapping) or tp in (dict, Mapping):
        _check_mapping(tp, value, path, issues)
    elif not _scalar_ok(tp, value):
        issues.append(_type_issue(path, tp, value))


def _check_dataclass(cls: type, value: Any, path: str, issues: list[Issue]) -> None:
    if not isinstance(value, Mapping):
        issues.append(_type_issue(path, cls, value))
        return
    hints = _hints(cls)
    fields = {config_key(f): f for f in dataclasses.fields(cls) if f.init}
    for key, item in value.items():
        child = _join(path, key)
        if key not in fields:
            suggestion = did_you_mean(str(key), fields)
            issues.append(Issue(child, f"unknown key {child!r}{suggestion}"))
            continue
        _check(hints[fields[key].name], item, child, issues)
    for key, f in fields.items():
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required and key not in value:
            child = _join(path, key)
            issues.append(Issue(child, f"missing key {child!r} ({_describe(hints[f.name])})"))


def _check_union(tp: Any, value: Any, path: str, issues: list[Issue]) -> None:
    arms = typing.get_args(tp)
    if value is None and _NONE in arms:
        return
    real = [arm for arm in arms if arm is not _NONE]
    if len(real) == 1:
        # Optional[X]: report X's own, precise problems rather than a generic "one of".
        _check(real[0], value, path, issues)
        return
    if any(not find_issues(arm, value, path) for arm in real):
        return
    wanted = " or ".join(_describe(arm) for arm in arms)
    issues.append(Issue(path, f"{_where(path)}expected {wanted}, got {_show(value)}"))


def _check_literal(choices: tuple[Any, ...], value: Any, path: str, issues: list[Issue]) -> None:
    # `1 == True` in Python, so compare types too: `dtype: true` must not match a literal 1.
    if any(value == choice and type(value) is type(choice) for choice in choices):
        return
    listed = ", ".join(str(choice) for choice in choices)
    hint = did_you_mean(value, [c for c in choices if isinstance(c, str)]) if isinstance(value, str) else ""
    issues.append(Issue(path, f"{_where(path)}{_show(value)} is not one of {listed}{hint}"))


def _check_sequence(tp: Any, value: Any, path: str, issues: list[Issue]) -> None:
    # YAML has only lists, so a list is accepted wherever a tuple or set is declared.
    if not isinstance(value, (list, tuple)):
        issues.append(_type_issue(path, tp, value))
        return
    args = typing.get_args(tp)
    is_fixed_tuple = typing.get_origin(tp) is tuple and args and not (len(args) == 2 and args[1] is ...)
    if is_fixed_tuple:
        if len(value) != len(args):
            issues.append(Issue(path, f"{_where(path)}expected {len(args)} items, got {len(value)}"))
            return
        for i, (arm, item) in enumerate(zip(args, value, strict=True)):
            _check(arm, item, f"{path}[{i}]", issues)
        return
    item_type = args[0] if args else Any
    for i, item in enumerate(value):
        _check(item_type, item, f"{path}[{i}]", issues)


def _check_mapping(tp: Any, value: Any, path: str, issues: list[Issue]) -> None:
    if not isinstance(value, Mapping):
        issues.append(_type_issue(path, tp, value))
        return
    args = typing.get_args(tp)
    key_type, value_type = args if len(args) == 2 else (Any, Any)
    for key, item in value.items():
        child = _join(path, key)
        if key_type is str and not isinstance(key, str):
            issues.append(Issue(child, f"{_where(child)}keys must be strings, got {_show(key)}"))
            continue
        _check(value_type, item, child, issues)


def _scalar_ok(tp: Any, value: Any) -> bool:
    if tp is _NONE or tp is None:
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if isinstance(tp, type) and issubclass(tp, Path):
        return isinstance(value, (str, Path))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return any(value == member.value or value == member.name for member in tp)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True  # a typing construct we do not model: accept rather than block a plugin


def _type_issue(path: str, tp: Any, value: Any) -> Issue:
    text = f"{_where(path)}expected {_describe(tp)}, got {_show(value)}"
    if tp is str and isinstance(value, (int, float, bool)):
        text += " (quote it to make it a string)"
    return Issue(path, text)


# --- building ---------------------------------------------------------------------------------


def _build(tp: Any, value: Any) -> Any:
    if tp is Any or tp is object:
        # Free-form values (options, preprocess) are copied so the instance never aliases the dict.
        return copy.deepcopy(value)
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        if value is None:
            return None
        arms = [arm for arm in typing.get_args(tp) if arm is not _NONE]
        chosen = next((arm for arm in arms if not find_issues(arm, value)), arms[0])
        return _build(chosen, value)
    if origin is typing.Literal:
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        hints = _hints(tp)
        names = {config_key(f): f.name for f in dataclasses.fields(tp) if f.init}
        return tp(**{names[key]: _build(hints[names[key]], item) for key, item in value.items()})
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple, set, frozenset):
        return _build_sequence(tp, value)
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        args = typing.get_args(tp)
        value_type = args[1] if len(args) == 2 else Any
        return {key: _build(value_type, item) for key, item in value.items()}
    if tp is float and value is not None:
        return float(value)
    if isinstance(tp, type) and issubclass(tp, Path):
        return tp(value).expanduser()
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return next(m for m in tp if value == m.value or value == m.name)
    return value


def _build_sequence(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp) or tp
    args = typing.get_args(tp)
    if origin is tuple and args and not (len(args) == 2 and args[1] is ...):
        return tuple(_build(arm, item) for arm, item in zip(args, value, strict=True))
    items = [_build(args[0] if args else Any, item) for item in value]
    return origin(items) if origin is not list else items


# --- helpers ----------------------------------------------------------------------------------


def config_key(f: dataclasses.Field[Any]) -> str:
    """The key a config spells a dataclass field with: its name, or ``metadata["key"]`` for a name
    Python keeps for itself (``from_`` is written ``from``)."""
    return str(f.metadata.get("key", f.name))


def _hints(cls: type) -> dict[str, Any]:
    # get_type_hints evaluates the string annotations of `from __future__ import annotations`.
    try:
        return typing.get_type_hints(cls)
    except Exception as error:  # a plugin's options class naming a type it never imports
        raise TypeError(f"cannot read the type hints of {cls.__qualname__}: {error}") from error


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _where(path: str) -> str:
    return f"{path}: " if path else ""


def _describe(tp: Any) -> str:
    if tp is _NONE or tp is None:
        return "null"
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return " or ".join(_describe(arm) for arm in typing.get_args(tp))
    if origin is typing.Literal:
        return "one of " + ", ".join(str(choice) for choice in typing.get_args(tp))
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    if tp in names:
        return names[tp]
    if dataclasses.is_dataclass(tp) or origin in (dict, Mapping) or tp in (dict, Mapping):
        return "a mapping"
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple, set, frozenset):
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1:] != (...,):
            return f"a list of {len(args)} items"
        return f"a list of {_plural(args[0])}" if args else "a list"
    if isinstance(tp, type) and issubclass(tp, Path):
        return "a path"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(str(member.value) for member in tp)
    return getattr(tp, "__name__", str(tp))


def _plural(tp: Any) -> str:
    plurals = {bool: "booleans", int: "integers", float: "numbers", str: "strings"}
    return plurals.get(tp, "mappings" if dataclasses.is_dataclass(tp) else "values")


def _show(value: Any) -> str:
    """A value as the user wrote it in YAML, not as Python would print it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
