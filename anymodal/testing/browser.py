"""Debian's Chromium driven by Playwright, as the chat page's browser test and its screenshot
script run it: headless, from ``/usr/bin/chromium`` (or ``$ANYMODAL_CHROMIUM``), since Playwright
cannot download a browser of its own here, with the flags that keep it off the network.
Importing this module does not import Playwright; :func:`launch_chromium` takes its handle.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: Without the background-networking flags Chromium keeps opening connections that a closed
#: network refuses; --no-sandbox because CI runs as root.
CHROMIUM_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def chromium_path() -> Path:
    """Where the browser is: ``$ANYMODAL_CHROMIUM``, else Debian's ``/usr/bin/chromium``."""
    return Path(os.environ.get("ANYMODAL_CHROMIUM") or "/usr/bin/chromium")


def launch_chromium(playwright: Any, path: str | Path | None = None) -> Any:
    """A headless Chromium browser from ``playwright`` (``sync_playwright()``'s handle)."""
    executable = str(path or chromium_path())
    return playwright.chromium.launch(executable_path=executable, headless=True, args=list(CHROMIUM_FLAGS))


__all__ = ["CHROMIUM_FLAGS", "chromium_path", "launch_chromium"]
