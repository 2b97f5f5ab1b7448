"""Build every anymodal distribution (core, the hf bridge, the first-party plugins) into one folder.

    python scripts/dist.py [--outdir dist]

``make dist`` runs it; tests/test_wheels.py imports it to build the wheels it installs, and to read
from them what must come from the package index (every requirement that is not anymodal's own).
Builds use the running environment's setuptools (``build --no-isolation``): no download per build.
Each wheel is built from its sdist, unpacked in a temporary folder, never in the source folder: an
in-place build reuses the source's build/lib, which keeps modules deleted since the last build, and
they would ship in the wheel. That also proves each sdist complete.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterable
from email.parser import HeaderParser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def source_dirs(root: Path = ROOT) -> list[Path]:
    """Core first, then the bridges and the plugins: every folder with its own pyproject.toml."""
    others = sorted(root.glob("bridges/*/pyproject.toml")) + sorted(root.glob("plugins/*/pyproject.toml"))
    return [root, *(path.parent for path in others)]


def build(outdir: Path, *, quiet: bool = True) -> list[Path]:
    """Build each distribution's sdist, then its wheel from the sdist, into ``outdir``; returns the
    wheels.

    Earlier builds of anymodal's own distributions in ``outdir`` are removed first, so the folder
    holds exactly one version of each.
    """
    outdir = outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    for stale in [*outdir.glob("anymodal*.whl"), *outdir.glob("anymodal*.tar.gz")]:
        stale.unlink()
    for source in source_dirs():
        command = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(outdir)]
        subprocess.run([*command, *(["--quiet"] if quiet else []), str(source)], check=True)
    return sorted(outdir.glob("*.whl"))


def wheel_metadata(wheel: Path) -> tuple[str, list[str]]:
    """A wheel's distribution name and its Requires-Dist lines."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
        headers = HeaderParser().parsestr(archive.read(name).decode("utf-8"))
    return headers["Name"], headers.get_all("Requires-Dist") or []


def third_party_requirements(wheels: Iterable[Path], extras: Iterable[str] = ()) -> list[str]:
    """What the wheels need from the package index: their requirements for this interpreter,
    with those of ``extras`` (``serve``), less the distributions among the wheels themselves."""
    wanted = ["", *extras]
    metadata = [wheel_metadata(wheel) for wheel in wheels]
    own = {canonicalize_name(name) for name, _ in metadata}
    needed: set[str] = set()
    for _, lines in metadata:
        for line in lines:
            requirement = Requirement(line)
            if canonicalize_name(requirement.name) in own:
                continue
            marker = requirement.marker
            if marker is not None and not any(marker.evaluate({"extra": extra}) for extra in wanted):
                continue
            extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
            needed.add(f"{requirement.name}{extras}{requirement.specifier}")
    return sorted(needed, key=str.lower)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=Path, default=ROOT / "dist", help="where to write (dist/)")
    args = parser.parse_args(argv)
    start = time.monotonic()
    wheels = build(args.outdir)
    built = sorted(p.name for p in args.outdir.resolve().iterdir() if p.name.startswith("anymodal"))
    print("\n".join(built))
    print(f"built {len(wheels)} wheels into {args.outdir} in {time.monotonic() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
