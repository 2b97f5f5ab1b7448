"""``anymodal new-plugin``: a new modality plugin distribution, written from ``template/``.

The templates are ``string.Template`` files: ``${name}`` is the modality, ``${package}`` the
import package, ``${distribution}`` the pip name, and so on (see :class:`PluginNames`). The result
installs with pip and passes its own tests as written, the conformance suite among them: its
example loader and encoder read a generic sensor array saved as ``.npy`` (``[samples, channels]``),
and every place an author fills in for a real sensor carries a ``TODO`` comment saying what to decide.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from string import Template

from anymodal import __version__
from anymodal.contract.errors import UsageError
from anymodal.contract.specs import CONTRACT_VERSION
from anymodal.files.atomic import check_empty_directory

TEMPLATES = Path(__file__).with_name("template")
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
#: Characters that cannot go unescaped into the Python and TOML strings a description lands in.
UNSAFE_DESCRIPTION = re.compile(r'["\\\n\r$]')


@dataclass(frozen=True)
class PluginNames:
    """Every name a plugin for modality ``name`` goes by."""

    name: str
    description: str
    distribution: str
    package: str
    flag: str
    encoder: str
    title: str
    contract: int
    anymodal_version: str


def plugin_names(name: str, description: str | None = None) -> PluginNames:
    """The names for modality ``name``; a UsageError when it cannot be one."""
    if not NAME_PATTERN.fullmatch(name) or keyword.iskeyword(name):
        raise UsageError(
            f"{name!r} cannot name a modality",
            hint="use lower-case letters, digits and underscores, starting with a letter (lidar, event_cam)",
        )
    text = description or f"{name.replace('_', ' ')} data as .npy arrays"
    if UNSAFE_DESCRIPTION.search(text):
        raise UsageError(
            f"the description cannot hold quotes, backslashes, dollar signs or line breaks: {text!r}",
            hint="describe the modality in one plain line",
        )
    dashed = name.replace("_", "-")
    return PluginNames(
        name=name,
        description=text,
        distribution=f"anymodal-{dashed}",
        package=f"anymodal_{name}",
        flag=f"--{dashed}",
        encoder=f"{dashed}-example",
        title="".join(part.capitalize() for part in name.split("_")),
        contract=CONTRACT_VERSION,
        anymodal_version=__version__,
    )


def create_plugin(names: PluginNames, directory: Path) -> list[Path]:
    """Write the plugin project into ``directory`` (absent or empty); return the files written."""
    check_empty_directory(directory)
    values = {key: str(value) for key, value in asdict(names).items()}
    written = []
    for template in sorted(TEMPLATES.rglob("*.tmpl")):
        target = directory / _target(template.relative_to(TEMPLATES), names)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(Template(template.read_text()).substitute(values))
        written.append(target)
    return written


def _target(relative: Path, names: PluginNames) -> Path:
    """Where a template lands: ``package/`` becomes the package, ``tests/test_x`` is made unique
    per plugin (tests of several plugins can run in one pytest session), ``gitignore`` is hidden."""
    parts = list(relative.with_suffix("").parts)
    if parts[0] == "package":
        parts[0] = names.package
    elif parts[0] == "tests":
        parts[-1] = parts[-1].replace("test_", f"test_{names.name}_", 1)
    elif parts == ["gitignore"]:
        parts = [".gitignore"]
    return Path(*parts)
