"""Where a request's media comes from, made a local file the model's loaders can read.

A part names its media by URL. ``data:`` URLs are decoded into a file (in the request's temporary
folder) whose suffix comes from the media type, so the model's usual checks and loaders apply to
it as to a file given to ``anymodal chat``: empty, too large, the wrong kind, corrupt. ``file://``
URLs and plain paths are read where they are, only under the server's ``--allow-path`` folders
(resolved first, so neither ``..`` nor a symbolic link leads out). ``http(s)`` URLs are refused
unless the server allows remote media, then fetched with urllib, no larger than its request limit.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from anymodal.contract.specs import ModalitySpec
from anymodal.serve.errors import ApiError, bad_request

#: Media types and the suffix their files get; others go through :mod:`mimetypes`.
SUFFIXES = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/jpg": ".jpg",
    "image/webp": ".webp",
    "image/gif": ".gif",
    "image/bmp": ".bmp",
    "image/tiff": ".tiff",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
    "audio/wave": ".wav",
    "audio/vnd.wave": ".wav",
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
    "audio/flac": ".flac",
    "audio/x-flac": ".flac",
    "audio/ogg": ".ogg",
    "audio/opus": ".opus",
    "audio/mp4": ".m4a",
    "audio/webm": ".webm",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "video/quicktime": ".mov",
    "video/x-matroska": ".mkv",
    "video/x-msvideo": ".avi",
    "text/csv": ".csv",
    "application/x-npy": ".npy",
    "application/npy": ".npy",
}

#: Media types that say nothing of the format: the file gets the modality's first file kind.
GENERIC = {"", "application/octet-stream", "binary/octet-stream"}

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*):")


@dataclass(frozen=True)
class MediaPolicy:
    """What the server lets a URL reach: folders for local paths, remote URLs, and a size bound."""

    allow_paths: tuple[Path, ...] = ()
    allow_remote: bool = False
    max_bytes: int = 64 * 2**20
    timeout_s: float = 30.0

    @classmethod
    def create(
        cls, allow_paths: Sequence[str | Path] = (), allow_remote: bool = False, max_mb: float = 64.0
    ) -> MediaPolicy:
        roots = tuple(Path(path).expanduser().resolve() for path in allow_paths)
        return cls(roots, allow_remote, int(max_mb * 2**20))


def suffix_for(media_type: str, spec: ModalitySpec) -> str:
    """The suffix a file of ``media_type`` gets, for ``spec``'s modality: the modality's own file
    kind when the subtype names it (``video/x-m4v`` is ``.m4v``, a plugin's ``application/x-ecg``
    its ``.ecg``), else the usual suffix of the media type."""
    media_type = media_type.strip().lower()
    if media_type in GENERIC:
        return spec.file_kinds[0] if spec.file_kinds else ""
    named = "." + media_type.partition("/")[2].removeprefix("x-")
    if named in spec.file_kinds:
        return named
    if media_type in SUFFIXES:
        return SUFFIXES[media_type]
    guessed = mimetypes.guess_extension(media_type, strict=False)
    if guessed:
        return guessed
    kinds = ", ".join(spec.file_kinds) or "any file"
    raise bad_request(
        f"unsupported media type {media_type!r} for {spec.name} (it accepts {kinds})", code="invalid_input"
    )


def decode_data_url(url: str, param: str) -> tuple[str, bytes]:
    """``(media type, bytes)`` of a ``data:[<type>][;base64],<data>`` URL."""
    header, comma, payload = url[len("data:") :].partition(",")
    if not comma:
        raise bad_request("malformed data: URL: no ',' before the data", param, "invalid_input")
    fields = [field.strip() for field in header.split(";")]
    media_type = fields[0].lower()
    if any(field.lower() == "base64" for field in fields[1:]):
        return media_type, decode_base64(payload, param)
    return media_type, urllib.parse.unquote_to_bytes(payload)


def decode_base64(text: str, param: str) -> bytes:
    try:
        return base64.b64decode(re.sub(r"\s+", "", text), validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("the data is not valid base64", param, "invalid_input") from None


def write_part(folder: Path, name: str, suffix: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    file = folder / f"{name}{suffix}"
    file.write_bytes(data)
    return file


def media_file(
    url: str, spec: ModalitySpec, folder: Path, name: str, policy: MediaPolicy, param: str
) -> Path:
    """A local file holding the media ``url`` names, for ``spec``'s modality; decoded and fetched
    media is written to ``folder`` as ``name`` plus its suffix."""
    if not isinstance(url, str) or not url.strip():
        raise bad_request("the part's url must be a non-empty string", param, "invalid_input")
    url = url.strip()
    scheme_match = _SCHEME.match(url)
    scheme = scheme_match.group(1).lower() if scheme_match else ""
    if scheme == "data":
        media_type, data = decode_data_url(url, param)
        return write_part(folder, name, suffix_for(media_type, spec), data)
    if scheme in ("http", "https"):
        if not policy.allow_remote:
            raise bad_request(
                f"remote URLs are refused: {_short(url)} (send the media as a data: URL, or start "
                "the server with --allow-remote)",
                param,
                "remote_url_refused",
            )
        media_type, data = fetch(url, policy, param)
        suffix = suffix_for(media_type, spec) if media_type not in GENERIC else ""
        if not suffix:
            path_suffix = Path(urllib.parse.urlparse(url).path).suffix.lower()
            suffix = path_suffix if path_suffix in spec.file_kinds else suffix_for("", spec)
        return write_part(folder, name, suffix, data)
    if scheme == "file":
        parsed = urllib.parse.urlparse(url)
        if parsed.netloc not in ("", "localhost"):
            raise bad_request(
                f"file: URLs name a local file, not one on {parsed.netloc}", param, "invalid_input"
            )
        return allowed_path(urllib.parse.unquote(parsed.path), policy, param)
    if scheme and len(scheme) > 1:  # one letter is a Windows drive, a path
        raise bad_request(
            f"unsupported URL scheme {scheme!r}: use a data: URL"
            + (", a path under --allow-path" if policy.allow_paths else "")
            + (" or an http(s) URL" if policy.allow_remote else ""),
            param,
            "invalid_input",
        )
    return allowed_path(url, policy, param)


def allowed_path(text: str, policy: MediaPolicy, param: str) -> Path:
    """``text`` as a resolved path, if it lies under one of the policy's folders."""
    if not policy.allow_paths:
        raise bad_request(
            "file paths are refused: this server was started without --allow-path (send the media "
            "as a data: URL)",
            param,
            "path_not_allowed",
        )
    path = Path(text).expanduser().resolve()
    if not any(path.is_relative_to(root) for root in policy.allow_paths):
        raise bad_request(
            f"the path {text!r} is not under a folder this server allows (--allow-path)",
            param,
            "path_not_allowed",
        )
    return path


def fetch(url: str, policy: MediaPolicy, param: str) -> tuple[str, bytes]:
    """``(media type, bytes)`` of a remote URL, refused past the policy's size bound."""
    limit = policy.max_bytes
    too_large = bad_request(
        f"the media at {_short(url)} is larger than this server's limit of {limit / 2**20:g} MB",
        param,
        "input_too_large",
    )
    request = urllib.request.Request(url, headers={"User-Agent": "anymodal-serve"})
    try:
        with urllib.request.urlopen(request, timeout=policy.timeout_s) as response:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > limit:
                raise too_large
            data = response.read(limit + 1)
            media_type = (response.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    except ApiError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise bad_request(f"cannot fetch {_short(url)}: {reason}", param, "fetch_failed") from None
    if len(data) > limit:
        raise too_large
    return media_type, data


def _short(url: str, width: int = 120) -> str:
    return url if len(url) <= width else url[: width - 3] + "..."
