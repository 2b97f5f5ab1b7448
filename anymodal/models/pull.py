"""``anymodal pull PRESET``: fetch a released model's weights into anymodal's weights directory,
verify them, record them in a manifest, and prepare them the way the preset reads them.

For ``imagebind-huge``: its checkpoint, from Meta's server. For ``pandagpt-7b`` /
``pandagpt-13b``: that checkpoint and PandaGPT's delta from the Hugging Face hub (verified against
the hub's size and SHA-256), converted with :mod:`anymodal.models.pandagpt`. Vicuna v0 is LLaMA-1 plus
a delta and cannot be downloaded as such; give its directory with ``--llm`` and it is linked where
the preset looks.

Every file is written as ``<name>.part`` and renamed once complete and verified, so an interrupted
pull leaves no file that looks whole. ``manifest.json`` in the weights directory records each
file's source, size and SHA-256; a file already there is checked against it instead of being
fetched again. Without network, the error lists every file with its source and destination.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from anymodal.contract.errors import AnymodalError, ModelLoadError, UsageError
from anymodal.files.atomic import atomic_file, file_digest

IMAGEBIND_URL = "https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth"
HUB = "https://huggingface.co"
MANIFEST = "manifest.json"
#: PandaGPT's releases: size -> (default max_len, the other max_len).
PANDAGPT_VARIANTS = {"7b": (1024, 512), "13b": (400, 256)}


@dataclass(frozen=True)
class Remote:
    """One file to fetch: from a URL, or ``filename`` of the hub repo ``repo``; to ``target``
    (relative to the weights directory)."""

    target: str
    url: str | None = None
    repo: str | None = None
    filename: str | None = None
    revision: str = "main"

    @property
    def source(self) -> str:
        return self.url or f"{HUB}/{self.repo}/resolve/{self.revision}/{self.filename}"


@dataclass(frozen=True)
class Expected:
    """What the source says a file is; None where it does not say."""

    size: int | None
    sha256: str | None


class Fetcher(Protocol):
    def reachable(self, remote: Remote) -> bool: ...

    def fetch(self, remote: Remote, destination: Path) -> Expected: ...


@dataclass(frozen=True)
class Recipe:
    """What ``anymodal pull`` does for one preset."""

    preset: str
    files: tuple[Remote, ...]
    delta: str | None = None  # a PandaGPT delta among files, to convert
    converted: str | None = None  # where the converted model goes
    llm: str | None = None  # where the preset expects an LLM no source serves
    llm_help: str = ""


def pandagpt_recipe(size: str, max_len: int | None = None) -> Recipe:
    default, other = PANDAGPT_VARIANTS[size]
    chosen = default if max_len is None else max_len
    if chosen not in (default, other):
        raise UsageError(
            f"PandaGPT {size} was released with max_len {default} and {other}, not {chosen}",
            hint=f"use --max-len {default} (the default) or {other}",
        )
    repo = f"openllmplayground/pandagpt_{size}_max_len_{chosen}"
    delta = f"downloads/pandagpt_{size}_max_len_{chosen}/pytorch_model.pt"
    return Recipe(
        preset=f"pandagpt-{size}",
        files=(IMAGEBIND, Remote(delta, repo=repo, filename="pytorch_model.pt")),
        delta=delta,
        converted=f"pandagpt-{size}",
        llm=f"vicuna-{size}-v0",
        llm_help=(
            f"Vicuna v0 {size.upper()} is LLaMA-1 {size.upper()} plus lmsys/vicuna-{size}-delta-v0, merged "
            "with FastChat 0.1.10's apply_delta; give the merged directory with --llm"
        ),
    )


IMAGEBIND = Remote("imagebind_huge.pth", url=IMAGEBIND_URL)
#: Presets whose weights `anymodal pull` fetches.
PULLABLE = ("imagebind-huge", *(f"pandagpt-{size}" for size in PANDAGPT_VARIANTS))


def recipe_for(preset: str, max_len: int | None = None) -> Recipe:
    if preset not in PULLABLE:
        from anymodal.contract.wording import did_you_mean

        raise UsageError(
            f"anymodal pull knows no preset {preset!r}{did_you_mean(preset, PULLABLE)}",
            hint=f"presets with downloadable weights: {', '.join(PULLABLE)}",
        )
    if preset == "imagebind-huge":
        if max_len is not None:
            raise UsageError("--max-len chooses a PandaGPT release; imagebind-huge has one file")
        return Recipe(preset, (IMAGEBIND,))
    return pandagpt_recipe(preset.removeprefix("pandagpt-"), max_len)


def pull(
    recipe: Recipe,
    weights: Path,
    fetcher: Fetcher,
    *,
    llm: Path | None = None,
    log: Callable[[str], None] = print,
) -> list[str]:
    """Fetch, verify and prepare ``recipe``'s files under ``weights``; return what is still missing
    (as lines for the user), which is empty when the preset is ready."""
    weights.mkdir(parents=True, exist_ok=True)
    manifest = read_manifest(weights)
    for remote in recipe.files:
        path = weights / remote.target
        if path.is_file() and remote.target not in manifest:  # copied in by hand
            log(f"recording {path} (placed by hand): its size and SHA-256 go in {MANIFEST}")
            manifest[remote.target] = {
                "source": "placed by hand",
                "size": path.stat().st_size,
                "sha256": file_digest(path),
            }
            write_manifest(weights, manifest)
    needed = [remote for remote in recipe.files if not _recorded(weights, manifest, remote)]
    offline = [remote for remote in needed if not fetcher.reachable(remote)]
    if offline:
        listed = "; ".join(f"{remote.source} -> {weights / remote.target}" for remote in offline)
        raise AnymodalError(
            f"cannot reach {', '.join(sorted({_host(r) for r in offline}))} to fetch: {listed}",
            hint="on a machine with network, download each file to the path given, copy them here, "
            "and run `anymodal pull` again to verify and prepare them",
        )
    for remote in recipe.files:
        if remote in needed:
            log(f"fetching {remote.source}")
            manifest[remote.target] = _fetch(weights, remote, fetcher)
            write_manifest(weights, manifest)
        else:
            log(f"have {weights / remote.target} (as recorded in {MANIFEST})")
    if recipe.llm is None:
        if llm is not None:
            raise UsageError(f"{recipe.preset} has no LLM; leave out --llm")
        return []
    if llm is not None:
        _link_llm(weights / recipe.llm, llm)
    if recipe.delta is not None and recipe.converted is not None:
        converted = weights / recipe.converted
        if not (converted / "anymodal.yaml").is_file():
            from anymodal.models import pandagpt

            log(f"converting {weights / recipe.delta} into {converted}")
            delta = pandagpt.read_delta(weights / recipe.delta)
            pandagpt.convert(delta, converted, str(weights / recipe.llm), str(weights / IMAGEBIND.target))
    if not (weights / recipe.llm / "config.json").is_file():
        return [f"{weights / recipe.llm}: {recipe.llm_help}"]
    return []


def verify(recipe: Recipe, weights: Path) -> list[str]:
    """Re-hash the recipe's files against the manifest; the problems found, as lines."""
    manifest = read_manifest(weights)
    problems = []
    for remote in recipe.files:
        path, entry = weights / remote.target, manifest.get(remote.target)
        if entry is None or not path.is_file():
            problems.append(f"{path}: not pulled yet")
        elif (path.stat().st_size, file_digest(path)) != (entry["size"], entry["sha256"]):
            problems.append(
                f"{path}: differs from what was pulled (size or SHA-256); delete it and pull again"
            )
    return problems


def read_manifest(weights: Path) -> dict[str, dict[str, object]]:
    file = weights / MANIFEST
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise ModelLoadError(
            f"the weights manifest {file} is not valid JSON ({error})",
            hint="delete it; `anymodal pull` then verifies each file against its source again",
        ) from error
    return dict(data)


def write_manifest(weights: Path, manifest: dict[str, dict[str, object]]) -> None:
    with atomic_file(weights / MANIFEST) as temporary:
        temporary.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


def _recorded(weights: Path, manifest: dict[str, dict[str, object]], remote: Remote) -> bool:
    """Whether the file is there as the manifest recorded it (size only: hashing 4.5 GB on every
    pull would cost a minute; ``anymodal pull --verify`` re-hashes)."""
    entry, path = manifest.get(remote.target), weights / remote.target
    return entry is not None and path.is_file() and path.stat().st_size == entry.get("size")


def _fetch(weights: Path, remote: Remote, fetcher: Fetcher) -> dict[str, object]:
    target = weights / remote.target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    expected = fetcher.fetch(remote, partial)
    size, digest = partial.stat().st_size, file_digest(partial)
    wrong = [
        f"{what} {got} where {remote.source} says {want}"
        for what, got, want in (("size", size, expected.size), ("SHA-256", digest, expected.sha256))
        if want is not None and got != want
    ]
    if wrong:
        partial.unlink()
        raise ModelLoadError(
            f"the download of {target.name} is corrupt: {'; '.join(wrong)}",
            hint="run `anymodal pull` again; if it repeats, download the file by hand",
        )
    os.replace(partial, target)
    return {"source": remote.source, "size": size, "sha256": digest}


def _link_llm(place: Path, llm: Path) -> None:
    source = llm.expanduser().resolve()
    if not (source / "config.json").is_file():
        raise UsageError(f"--llm {llm} is not a Hugging Face model directory (no config.json)")
    if place.is_symlink() or place.exists():
        if place.resolve() == source:
            return
        raise UsageError(
            f"{place} already exists and is not {source}", hint="remove it, or leave out --llm to keep it"
        )
    place.symlink_to(source, target_is_directory=True)


def _host(remote: Remote) -> str:
    return urlparse(remote.source).netloc


class NetworkFetcher:
    """The real thing: the hub through huggingface_hub (verified against its metadata), plain
    HTTPS for other URLs (verified against Content-Length)."""

    def reachable(self, remote: Remote) -> bool:
        host = _host(remote)
        if remote.repo is not None and os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0"):
            return False
        try:
            socket.create_connection((host, 443), timeout=5).close()
        except OSError:
            return False
        return True

    def fetch(self, remote: Remote, destination: Path) -> Expected:
        if remote.repo is not None and remote.filename is not None:
            return self._hub(remote, destination)
        assert remote.url is not None
        return self._url(remote.url, destination)

    @staticmethod
    def _hub(remote: Remote, destination: Path) -> Expected:
        from huggingface_hub import HfApi, hf_hub_download

        assert remote.repo is not None and remote.filename is not None
        (info,) = HfApi().get_paths_info(
            remote.repo, [remote.filename], expand=True, revision=remote.revision
        )
        lfs = getattr(info, "lfs", None)
        staging = destination.parent / ".hub"
        try:
            path = hf_hub_download(remote.repo, remote.filename, revision=remote.revision, local_dir=staging)
            shutil.move(str(path), destination)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return Expected(getattr(info, "size", None), getattr(lfs, "sha256", None) if lfs else None)

    @staticmethod
    def _url(url: str, destination: Path) -> Expected:
        from urllib.request import urlopen

        with urlopen(url, timeout=60) as response, destination.open("wb") as out:
            length = response.headers.get("Content-Length")
            shutil.copyfileobj(response, out, length=1 << 24)
        return Expected(int(length) if length else None, None)
