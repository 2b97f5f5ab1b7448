"""Incremental detokenization and stop strings, on their own (no model)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from anymodal_hf.streaming import IncrementalDetokenizer, StopStringFilter, stream_text

from anymodal.testing import train_bpe_tokenizer

TOKENIZER = train_bpe_tokenizer()


def decode(ids: list[int]) -> str:
    return str(TOKENIZER.decode(ids, skip_special_tokens=True))


TEXT = "Naïve café: 日本語 and 🙂🙂 — done.\nNext line"


def test_detokenizer_never_splits_a_character() -> None:
    ids = TOKENIZER.encode(TEXT, add_special_tokens=False)
    detokenizer = IncrementalDetokenizer(decode)
    pieces = [detokenizer.push(i) for i in ids]
    pieces.append(detokenizer.flush())
    assert "".join(pieces) == TEXT
    assert not any("\ufffd" in piece for piece in pieces)
    assert pieces.count("") >= 5  # partial characters were held back, not emitted


def test_detokenizer_flush_shows_an_incomplete_character_as_decode_does() -> None:
    ids = TOKENIZER.encode("ok 🙂", add_special_tokens=False)[:-1]
    detokenizer = IncrementalDetokenizer(decode)
    text = "".join(detokenizer.push(i) for i in ids) + detokenizer.flush()
    assert text == decode(ids)
    assert text.endswith("\ufffd")


def test_detokenizer_ignores_special_tokens() -> None:
    ids = [
        TOKENIZER.bos_token_id,
        *TOKENIZER.encode("hi there", add_special_tokens=False),
        TOKENIZER.pad_token_id,
    ]
    detokenizer = IncrementalDetokenizer(decode)
    assert "".join(detokenizer.push(i) for i in ids) + detokenizer.flush() == "hi there"


def feed(stops: StopStringFilter, text: str) -> list[str]:
    """Push ``text`` one character at a time; return what came out at each step, then the flush."""
    out = [stops.push(char) for char in text]
    return [*out, stops.flush()]


def test_holds_back_a_possible_stop_and_releases_it_when_it_fails() -> None:
    out = feed(StopStringFilter(["###"]), "a # b ## c")
    assert out == ["a", " ", "", "# ", "b", " ", "", "", "## ", "c", ""]
    assert "".join(out) == "a # b ## c"


def test_cuts_before_the_stop_and_ignores_the_rest() -> None:
    stops = StopStringFilter(["</s>", "User:"])
    out = feed(stops, "Yes.</s>User: more")
    assert "".join(out) == "Yes."
    assert stops.stopped
    assert stops.push("anything") == ""


def test_earliest_stop_wins_when_both_complete_in_one_push() -> None:
    assert StopStringFilter(["cd", "bc"]).push("xxabcd") == "xxa"
    assert StopStringFilter(["bc", "abcd", "c"]).push("xxabcd") == "xx"


def test_stop_at_the_very_start_and_empty_stops() -> None:
    assert StopStringFilter(["Hi"]).push("Hi there") == ""
    assert "".join(feed(StopStringFilter(["", ""]), "plain")) == "plain"
    assert "".join(feed(StopStringFilter([]), "plain")) == "plain"


@pytest.mark.parametrize("stop", ["日本", "🙂🙂", "— d", "\nN", "é: 日"])
def test_stream_text_cuts_multibyte_stops_exactly(stop: str) -> None:
    ids = TOKENIZER.encode(TEXT, add_special_tokens=False)
    pieces = list(stream_text(ids, decode, [stop]))
    assert "".join(pieces) == TEXT[: TEXT.index(stop)]
    assert all(pieces) and not any("\ufffd" in p for p in pieces)


def test_stream_text_closes_its_source_on_stop_and_on_close() -> None:
    closed: list[str] = []

    def source(name: str) -> Iterator[int]:
        try:
            yield from TOKENIZER.encode("one two three four five", add_special_tokens=False)
        finally:
            closed.append(name)

    assert "".join(stream_text(source("stopped"), decode, [" three"])) == "one two"
    stream = stream_text(source("closed"), decode)
    next(stream)
    stream.close()
    assert closed == ["stopped", "closed"]
