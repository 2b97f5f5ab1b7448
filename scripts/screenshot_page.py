"""Take docs/serving-page.png: the chat page of ``anymodal serve`` in the middle of a conversation.

    python scripts/screenshot_page.py [--out docs/serving-page.png] [--chromium /usr/bin/chromium]

It starts ``anymodal serve`` on the built-in demo model on a free loopback port, opens the page in
headless Chromium with Playwright (the ``browser`` extra), asks about an image and then a sound as
tests/serve/test_page.py does, and saves the 1200x800 page with the conversation's previews.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from anymodal.testing.browser import chromium_path, launch_chromium

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def demo_server(start_s: float = 90) -> Iterator[str]:
    """``anymodal serve`` on the demo model until the block ends; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "anymodal", "serve", "--port", str(port)]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_s
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=1):
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"anymodal serve did not start (exit status {process.poll()})")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()


def ask(page, question: str, expected: str) -> None:
    page.get_by_label("Message").fill(question)
    page.get_by_role("button", name="Send").click()
    reply = page.get_by_test_id("reply").last
    reply.filter(has_text=expected).wait_for()
    page.locator('[data-testid="reply"][data-state="done"]').last.filter(has_text=expected).wait_for()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "serving-page.png")
    parser.add_argument("--chromium", default=str(chromium_path()))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with demo_server() as url, sync_playwright() as playwright:
        browser = launch_chromium(playwright, args.chromium)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.set_default_timeout(20_000)
        page.goto(f"{url}/")
        page.get_by_test_id("model-name").filter(has_text="builtin:demo").wait_for()
        files = page.get_by_test_id("file-input")
        files.set_input_files(str(EXAMPLES / "red_circle.png"))
        ask(page, "What shape is this?", "circle")
        files.set_input_files(str(EXAMPLES / "low_rising_tone.wav"))
        ask(page, "How does the tone change over time?", "rises")
        # The next message being written: a depth map attached, its modality picked from three.
        files.set_input_files(str(EXAMPLES / "near_object_depth.png"))
        page.get_by_label("Message").fill("Is the object close to the camera?")
        page.wait_for_function("[...document.images].every((image) => image.complete)")
        page.mouse.move(0, 0)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(args.out))
        browser.close()
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
