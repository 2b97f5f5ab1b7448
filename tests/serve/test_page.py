"""The chat page at ``/`` of ``anymodal serve``: its routes, and the page itself in a real browser.

The routes are checked over HTTP: the page and its files with their content types, byte for byte
the packaged ones, and nothing else (no listing, no way out of the folder). The browser tests drive
Debian's Chromium with Playwright (the ``browser`` extra) through conversations with the built-in
demo model (``demo_server``) and with a scripted model behind an API key. They skip when Playwright
or Chromium (``/usr/bin/chromium``, or ``$ANYMODAL_CHROMIUM``) is missing, and fail instead when
``ANYMODAL_REQUIRE_BROWSER`` is set to anything but ``0`` (as CI does).
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import re
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from anymodal.config import load_config
from anymodal.contract.registry import load_registry
from anymodal.runtime.chat import ChatSession
from anymodal.serve.app import ServeOptions, create_app
from anymodal.serve.page import static_files
from anymodal.testing import toy
from anymodal.testing.browser import chromium_path, launch_chromium

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CHROMIUM = chromium_path()
STATIC = files("anymodal.serve") / "static"
PAGE_FILES = {"index.html": "text/html", "chat.js": "text/javascript", "chat.css": "text/css"}
KEY = "s3cret-key"
TOY_REPLY = "It hums softly."
PIECE_GAP_S = 0.3
TIMEOUT_MS = 15_000

#: Records, in the page, each earlier text of a reply as it grows (a MutationObserver's old values),
#: so a test can tell a reply that streamed in from one that arrived whole.
GROWTH_SCRIPT = """
window.__replyGrowth = [];
new MutationObserver((records) => {
  for (const record of records) {
    const parent = record.target.parentElement;
    if (record.type === "characterData" && parent && parent.dataset.testid === "reply") {
      window.__replyGrowth.push(record.oldValue);
    }
  }
}).observe(document, { subtree: true, characterData: true, characterDataOldValue: true });
"""


def browser_required() -> bool:
    return os.environ.get("ANYMODAL_REQUIRE_BROWSER", "") not in ("", "0")


def no_browser(reason: str) -> None:
    """Skip, or fail when the environment says the browser tests must run."""
    if browser_required():
        pytest.fail(f"{reason} (ANYMODAL_REQUIRE_BROWSER is set, so this is a failure, not a skip)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium, headless, driven by Playwright; skipped (or failed, see above) without them."""
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError as error:
        no_browser(f"Playwright is not installed ({error}); install it with: pip install -e '.[browser]'")
    if not CHROMIUM.is_file():
        no_browser(f"Chromium is not installed at {CHROMIUM}; install it with: apt-get install chromium")
    with sync_playwright() as playwright:
        try:
            chromium = launch_chromium(playwright, CHROMIUM)
        except Error as error:
            pytest.fail(f"Chromium at {CHROMIUM} is installed but does not start: {error}")
        yield chromium
        chromium.close()


@dataclass
class Tab:
    """One page in its own browser context, with what it asked for and what it logged."""

    page: Any
    base: str
    requests: list[Any] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def chat_bodies(self) -> list[dict[str, Any]]:
        return [
            json.loads(request.post_data)
            for request in self.requests
            if request.url == f"{self.base}/v1/chat/completions" and request.method == "POST"
        ]

    def outside_requests(self) -> list[str]:
        allowed = (f"{self.base}/", "data:", "blob:")
        return [request.url for request in self.requests if not request.url.startswith(allowed)]


@pytest.fixture
def open_tab(browser) -> Iterator[Any]:
    """``open_tab(base_url)``: the chat page of that server in a fresh tab, with the growth recorder."""
    contexts = []

    def open_(base: str) -> Tab:
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        contexts.append(context)
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        tab = Tab(page, base)
        page.on("request", lambda request: tab.requests.append(request))
        page.on(
            "console", lambda message: message.type == "error" and tab.console_errors.append(message.text)
        )
        page.on("pageerror", lambda error: tab.console_errors.append(f"uncaught: {error}"))
        page.add_init_script(GROWTH_SCRIPT)
        page.goto(f"{base}/")
        return tab

    yield open_
    for context in contexts:
        context.close()


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    playwright_expect.set_options(timeout=TIMEOUT_MS)
    return playwright_expect(locator)


def by_id(page: Any, testid: str) -> Any:
    return page.get_by_test_id(testid)


def ask(page: Any, question: str) -> Any:
    """Type ``question``, send it, and return the reply element the answer streams into."""
    page.get_by_label("Message").fill(question)
    page.get_by_role("button", name="Send").click()
    return by_id(page, "reply").last


def finished(reply: Any) -> None:
    expect(reply).to_have_attribute("data-state", re.compile("done|error|stopped"))


def attach(page: Any, *paths: Path) -> None:
    by_id(page, "file-input").set_input_files([str(path) for path in paths])


# -- the routes ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_session(write_toy_model) -> tuple[ChatSession, Any]:
    """A scripted model that always answers TOY_REPLY, with the toy modality (``.npy`` files)."""
    registry = load_registry(plugins=[toy])
    config = write_toy_model(TOY_REPLY, ("toy",))
    session = ChatSession.from_config(load_config(config, registry=registry).config, registry)
    return session, registry


@pytest.fixture(scope="module")
def keyed_server(toy_session, live_server) -> Iterator[str]:
    """The scripted model served with an API key, on a free loopback port."""
    session, registry = toy_session
    app = create_app(session, registry, ServeOptions(model_id="toy-model", api_key=KEY))
    with live_server(app) as base:
        yield base


def raw_get(base: str, path: str) -> tuple[int, bytes]:
    """GET ``path`` exactly as written: no client normalizing ``..`` or percent escapes first."""
    parts = urllib.parse.urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def openai_404(status: int, body: bytes) -> dict[str, Any]:
    assert status == 404, body
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == "not_found"
    return error


def test_the_page_and_its_files_are_the_packaged_ones_with_their_content_types(keyed_server):
    page = httpx.get(f"{keyed_server}/", timeout=10)  # the API key guards /v1 only
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.content == (STATIC / "index.html").read_bytes()
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    linked = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert sorted(linked) == ["/static/chat.css", "/static/chat.js"]
    for name, kind in PAGE_FILES.items():
        response = httpx.get(f"{keyed_server}/static/{name}", timeout=10)
        assert response.status_code == 200, name
        assert response.headers["content-type"].split(";")[0] == kind, name
        assert response.content == (STATIC / name).read_bytes(), name
    assert httpx.get(f"{keyed_server}/v1/models", timeout=10).status_code == 401
    head = httpx.head(f"{keyed_server}/", timeout=10)  # a health probe's or link checker's HEAD
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-type"] == "text/html; charset=utf-8"


def test_the_page_files_are_package_data_and_all_are_served():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["anymodal.serve"]
    folder = ROOT / "anymodal" / "serve" / "static"
    on_disk = {path for path in folder.iterdir() if path.is_file()}
    covered = {path for pattern in patterns for path in (ROOT / "anymodal" / "serve").glob(pattern)}
    assert on_disk == covered and {path.name for path in on_disk} == set(PAGE_FILES)
    assert set(static_files()) == set(PAGE_FILES)


def test_the_page_uses_nothing_from_outside_the_server():
    for name in PAGE_FILES:
        text = (STATIC / name).read_text()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), name
        assert "@import" not in text and "//cdn" not in text, name


def test_no_listing_no_other_files_and_no_way_out_of_the_folder(keyed_server):
    for path in ("/static/", "/static", "/static/missing.js", "/static/page.py", "/index.htm"):
        error = openai_404(*raw_get(keyed_server, path))
        assert error["message"] == f"no such endpoint: GET {path}"
    for path in (
        "/static/../app.py",
        "/static/..%2fapp.py",
        "/static/%2e%2e/app.py",
        "/static/%2e%2e%2fpage.py",
        "/static/..%2F..%2F..%2Fpyproject.toml",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
    ):
        status, body = raw_get(keyed_server, path)
        openai_404(status, body)
        assert b"create_app" not in body and b"add_page" not in body and b"root:" not in body, path


# -- in the browser --------------------------------------------------------------------------------


def test_a_conversation_with_the_demo_model(open_tab, demo_server, tmp_path):
    tab = open_tab(demo_server.url)
    page = tab.page
    expect(by_id(page, "model-name")).to_have_text("builtin:demo")
    expect(by_id(page, "modalities").locator("li")).to_have_text(
        ["audio", "depth", "image", "imu", "thermal", "video"]
    )
    accept = by_id(page, "file-input").get_attribute("accept") or ""
    assert {".png", ".wav", ".mp4", ".npy"} <= set(accept.split(","))
    assert tab.console_errors == [], "console errors on load"

    # An image, whose .png three modalities take: the image one is picked, the others offered.
    attach(page, EXAMPLES / "red_circle.png")
    card = by_id(page, "attachment")
    expect(card).to_have_count(1)
    expect(card.get_by_test_id("preview-image")).to_be_visible()
    select = card.get_by_label("Modality of red_circle.png")
    expect(select).to_have_value("image")
    expect(select.locator("option")).to_have_text(["depth", "image", "thermal"])
    reply = ask(page, "What shape is this?")
    expect(reply).to_contain_text("circle")
    finished(reply)
    expect(by_id(page, "attachment")).to_have_count(0)  # sent with the message
    first = reply.text_content() or ""
    assert reply.get_attribute("data-state") == "done"

    # A sound, in a second turn that carries the first.
    attach(page, EXAMPLES / "low_rising_tone.wav")
    expect(by_id(page, "attachment").get_by_test_id("preview-audio")).to_have_count(1)
    expect(by_id(page, "attachment").get_by_test_id("modality")).to_have_text("audio")
    reply = ask(page, "How does the tone change over time?")
    expect(reply).to_contain_text("rises")
    finished(reply)
    user_messages = by_id(page, "user-message")
    expect(user_messages.nth(0).locator("img")).to_be_visible()
    expect(user_messages.nth(1).locator("audio")).to_have_count(1)

    bodies = tab.chat_bodies()
    assert len(bodies) == 2 and all(body["stream"] is True for body in bodies)
    assert bodies[1]["model"] == "builtin:demo"
    image_message, answer, sound_message = bodies[1]["messages"]
    image_part, question = image_message["content"]
    assert image_part["type"] == "image_url"
    png = (EXAMPLES / "red_circle.png").read_bytes()
    assert image_part["image_url"]["url"] == f"data:image/png;base64,{base64.b64encode(png).decode()}"
    assert question == {"type": "text", "text": "What shape is this?"}
    assert answer == {"role": "assistant", "content": first}
    sound = sound_message["content"][0]
    wav = (EXAMPLES / "low_rising_tone.wav").read_bytes()
    assert sound == {
        "type": "input_audio",
        "input_audio": {"data": base64.b64encode(wav).decode(), "format": "wav"},
    }

    # A corrupt picture: the server's message, inline; the page goes on, without that turn.
    broken = tmp_path / "broken.png"
    broken.write_bytes(os.urandom(2048))
    attach(page, broken)
    reply = ask(page, "What shape is this?")
    error = by_id(page, "assistant-message").last.get_by_test_id("error-message")
    expect(error).to_contain_text("not a readable image")
    expect(reply).to_have_attribute("data-state", "error")
    reply = ask(page, "What colour is the shape?")
    expect(reply).to_contain_text("red")
    finished(reply)
    last = tab.chat_bodies()[-1]["messages"]
    assert [message["role"] for message in last] == ["user", "assistant", "user", "assistant", "user"]
    assert last[-1]["content"] == "What colour is the shape?"

    by_id(page, "reset").click()
    expect(by_id(page, "user-message")).to_have_count(0)
    expect(by_id(page, "assistant-message")).to_have_count(0)
    expect(by_id(page, "empty")).to_be_visible()
    reply = ask(page, "What shape is this?")  # nothing of the old conversation goes with it
    finished(reply)
    assert tab.chat_bodies()[-1]["messages"] == [{"role": "user", "content": "What shape is this?"}]
    assert tab.outside_requests() == []


def test_a_reply_is_shown_piece_by_piece_as_it_streams(
    open_tab, write_toy_model, replace_generation, serve_app
):
    # The server sends, as one event, every piece that came since its last read (so a loaded
    # machine can merge a fast model's whole reply), hence a model paced here: each piece comes
    # PIECE_GAP_S after the last, and the page must show each one before the next arrives.
    registry = load_registry(plugins=[toy])
    config = load_config(write_toy_model(TOY_REPLY, ("toy",)), registry=registry).config
    session = ChatSession.from_config(config, registry)
    pieces = ["It ", "hums ", "soft", "ly."]

    def paced(_config: Any) -> Iterator[str]:
        for piece in pieces:
            time.sleep(PIECE_GAP_S)
            yield piece

    replace_generation(session, paced)
    tab = open_tab(serve_app(create_app(session, registry, ServeOptions(model_id="paced"))))
    page = tab.page
    expect(by_id(page, "model-name")).to_have_text("paced")
    reply = ask(page, "Hello")
    expect(reply).to_have_attribute("data-state", "done")
    assert reply.text_content() == "".join(pieces)
    assert reply.get_attribute("data-chunks") == str(len(pieces))
    growth = page.evaluate("window.__replyGrowth")
    shown = ["".join(pieces[:count]) for count in range(len(pieces))]
    assert growth == shown, "each piece is appended to the reply as it arrives"


def test_dropped_files_pick_their_modality_and_can_be_removed(open_tab, demo_server):
    tab = open_tab(demo_server.url)
    page = tab.page
    expect(by_id(page, "model-name")).to_have_text("builtin:demo")
    dropped = {name: (EXAMPLES / name).read_bytes() for name in ["near_object_depth.png", "running_imu.npy"]}
    dropped["notes.txt"] = b"no modality takes text files"
    names = list(dropped)
    payloads = [base64.b64encode(data).decode() for data in dropped.values()]
    transfer = page.evaluate_handle(
        """([names, payloads]) => {
            const transfer = new DataTransfer();
            names.forEach((name, i) => {
              const bytes = Uint8Array.from(atob(payloads[i]), (c) => c.charCodeAt(0));
              transfer.items.add(new File([bytes], name));
            });
            return transfer;
        }""",
        [names, payloads],
    )
    page.dispatch_event("body", "dragenter", {"dataTransfer": transfer})
    expect(by_id(page, "drop-overlay")).to_be_visible()
    page.dispatch_event("body", "drop", {"dataTransfer": transfer})
    expect(by_id(page, "drop-overlay")).to_be_hidden()
    cards = by_id(page, "attachment")
    expect(cards).to_have_count(2)
    expect(by_id(page, "notice")).to_contain_text("notes.txt (no installed modality takes .txt)")
    expect(page.get_by_label("Modality of near_object_depth.png")).to_have_value("depth")
    expect(page.get_by_label("Modality of running_imu.npy")).to_have_value("imu")
    expect(cards.nth(1).get_by_test_id("file-chip")).to_have_text(".npy")
    page.get_by_role("button", name="Remove running_imu.npy").click()
    expect(cards).to_have_count(1)
    expect(cards).to_have_attribute("data-name", "near_object_depth.png")
    reply = ask(page, "Is the object close to the camera?")
    expect(reply).to_contain_text("near")
    (part, _question) = tab.chat_bodies()[-1]["messages"][0]["content"]
    assert part["type"] == "depth_url" and part["depth_url"]["url"].startswith("data:image/png;base64,")
    assert tab.outside_requests() == []


def test_stop_errors_in_the_stream_and_a_lost_server_are_shown_and_the_page_goes_on(open_tab, demo_server):
    tab = open_tab(demo_server.url)
    page = tab.page
    expect(by_id(page, "model-name")).to_have_text("builtin:demo")
    chat = "**/v1/chat/completions"

    held: list[Any] = []
    # The request waits, unanswered, until the page gives up on it.
    page.route(chat, lambda route: held.append(route))
    reply = ask(page, "Hello")
    stop = page.get_by_role("button", name="Stop")
    expect(stop).to_be_visible()
    expect(page.get_by_role("button", name="Send")).to_be_hidden()
    stop.click()
    expect(by_id(page, "stopped")).to_have_text("Stopped.")
    expect(reply).to_have_attribute("data-state", "stopped")
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    page.unroute(chat)

    events = (
        'data: {"choices": [{"index": 0, "delta": {"content": "Half a"}}]}\n\n'
        'data: {"error": {"message": "the model failed half way", "type": "server_error",'
        ' "param": null, "code": "model_error"}}\n\n'
    )
    page.route(chat, lambda route: route.fulfill(status=200, content_type="text/event-stream", body=events))
    reply = ask(page, "Hello")
    expect(by_id(page, "error-message").last).to_have_text("the model failed half way")
    expect(reply).to_have_text("Half a")
    page.unroute(chat)

    page.route(chat, lambda route: route.abort("connectionrefused"))
    ask(page, "Hello")
    expect(by_id(page, "error-message").last).to_contain_text("could not reach the server")
    page.unroute(chat)

    reply = ask(page, "Hello")
    expect(reply).to_contain_text("demo model")
    finished(reply)
    messages = tab.chat_bodies()[-1]["messages"]
    # The stopped turn stays in the conversation; the two that failed do not.
    assert messages == [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "Hello"},
    ]


def test_a_server_with_an_api_key_asks_for_it(open_tab, keyed_server):
    tab = open_tab(keyed_server)
    page = tab.page
    expect(by_id(page, "model-name")).to_have_text("API key needed")
    form = by_id(page, "key-form")
    expect(form).to_be_visible()
    expect(by_id(page, "key-note")).to_contain_text("needs an API key")
    key_field = page.get_by_label("API key", exact=True)
    expect(key_field).to_be_focused()
    key_field.fill("wrong")
    by_id(page, "api-key-save").click()
    expect(by_id(page, "key-note")).to_contain_text("refused this key")
    key_field.fill(KEY)
    by_id(page, "api-key-save").click()
    expect(by_id(page, "model-name")).to_have_text("toy-model")
    expect(form).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('anymodal.apiKey')") == KEY

    attach_npy = by_id(page, "file-input")
    expect(attach_npy).to_have_attribute("accept", ".npy")
    reply = ask(page, "What is this?")
    expect(reply).to_have_text(TOY_REPLY)
    chat = [r for r in tab.requests if r.url.endswith("/v1/chat/completions")]
    assert chat and chat[-1].headers["authorization"] == f"Bearer {KEY}"

    page.reload()  # the key lasts as long as the tab
    expect(by_id(page, "model-name")).to_have_text("toy-model")
    expect(form).to_be_hidden()
    assert tab.outside_requests() == []
