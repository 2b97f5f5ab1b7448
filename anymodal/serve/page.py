"""The chat page of ``anymodal serve``: ``GET /`` answers the page (``static/index.html``) and
``GET /static/<name>`` its script and style sheet, read from the package's ``static`` folder.

Only the files shipped in that folder are served, each by its exact name with its content type:
there is no directory listing, and any other name (``/static/``, ``/static/../app.py``, a file that
does not exist) is the server's usual OpenAI-shaped 404. The page fetches nothing from outside the
server; its Content-Security-Policy says so to the browser. Imported by :mod:`~anymodal.serve.app`
only, since it imports FastAPI.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

#: The content type of each kind of file the page is made of.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}

#: Everything the page may load: its own files, the media the user picks (as blob: and data: URLs),
#: and the server's API. Nothing else, so a page that tried to reach the internet would be stopped.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)

INDEX = "index.html"


def static_files() -> dict[str, bytes]:
    """The page's files by name: every plain file of ``anymodal/serve/static`` of a known kind."""
    folder = files("anymodal.serve") / "static"
    found = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rpartition(".")[2] if "." in entry.name else ""
        if entry.is_file() and suffix in CONTENT_TYPES and not entry.name.startswith("."):
            found[entry.name] = entry.read_bytes()
    return found


def content_type(name: str) -> str:
    return CONTENT_TYPES["." + name.rpartition(".")[2]]


def add_page(app: FastAPI, shipped: Mapping[str, bytes] | None = None) -> None:
    """Add ``GET /`` (the chat page) and ``GET /static/<name>`` (its files) to ``app`` (``HEAD``
    too, for link checkers and load balancers' health probes)."""
    pages = dict(static_files() if shipped is None else shipped)
    headers = {
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }

    def answer(name: str) -> Response:
        body = pages.get(name)
        if body is None:
            raise StarletteHTTPException(404)
        extra = {"Content-Security-Policy": CONTENT_SECURITY_POLICY} if name.endswith(".html") else {}
        return Response(body, media_type=content_type(name), headers={**headers, **extra})

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index() -> Response:
        return answer(INDEX)

    @app.api_route("/static/{name}", methods=["GET", "HEAD"], include_in_schema=False)
    async def static(name: str) -> Response:
        return answer(name)


__all__ = ["add_page"]
