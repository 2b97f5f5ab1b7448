"""From generated token ids to streamed text: incremental detokenization and stop strings.

A piece is yielded as soon as it is certain: never half a UTF-8 character (a byte-level token can
end mid-character, which decodes to U+FFFD until the rest arrives) and never text that could still
turn out to be the start of a stop string. The pieces concatenate to the final reply, which ends
just before the first stop string; a stop string itself is never yielded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

REPLACEMENT_CHAR = "\ufffd"

Decode = Callable[[Sequence[int]], str]


class IncrementalDetokenizer:
    """Turns token ids, pushed one at a time, into text deltas.

    Decoding the whole reply at every step would be quadratic, and decoding each token alone is
    wrong for tokenizers whose text depends on the neighbours (SentencePiece's leading space, byte
    fallback). So each step decodes a short window: the tokens since the last emitted boundary,
    with and without the newest ones, and emits the difference.
    """

    def __init__(self, decode: Decode) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._prefix_offset = 0  # start of the window decoded for context
        self._read_offset = 0  # tokens before this are already emitted

    def push(self, token_id: int) -> str:
        """The text that ``token_id`` completes, or ``""`` while a character is still partial."""
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix_offset : self._read_offset])
        new_text = self._decode(self._ids[self._prefix_offset :])
        if len(new_text) > len(prefix_text) and not new_text.endswith(REPLACEMENT_CHAR):
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._ids)
            return new_text[len(prefix_text) :]
        return ""

    def flush(self) -> str:
        """Whatever is still held back, even an incomplete character (as decode would show it)."""
        if self._read_offset == len(self._ids):
            return ""
        prefix_text = self._decode(self._ids[self._prefix_offset : self._read_offset])
        new_text = self._decode(self._ids[self._prefix_offset :])
        self._prefix_offset = self._read_offset = len(self._ids)
        return new_text[len(prefix_text) :]


class StopStringFilter:
    """Passes text through, holding back any tail that could begin a stop string.

    After :meth:`push` sets :attr:`stopped`, the reply is complete and further text is ignored.
    """

    def __init__(self, stop: Iterable[str]) -> None:
        self._stops = tuple(s for s in stop if s)
        self._longest = max((len(s) for s in self._stops), default=0)
        self._text = ""
        self._emitted = 0  # characters of _text already returned
        self.stopped = False

    def push(self, text: str) -> str:
        """The part of the reply that is now certain."""
        if self.stopped or not text:
            return ""
        # A stop string not found before cannot start earlier than this, so only the tail is searched.
        search_from = max(0, len(self._text) - self._longest + 1)
        self._text += text
        hits = [i for i in (self._text.find(s, search_from) for s in self._stops) if i >= 0]
        if hits:
            self.stopped = True
            return self._take(min(hits))
        return self._take(len(self._text) - self._partial_stop_length())

    def flush(self) -> str:
        """The held-back tail, once no more text will come."""
        return "" if self.stopped else self._take(len(self._text))

    def _partial_stop_length(self) -> int:
        """Length of the longest suffix of the text that is a proper prefix of a stop string."""
        for length in range(min(self._longest - 1, len(self._text)), 0, -1):
            tail = self._text[-length:]
            if any(s.startswith(tail) for s in self._stops):
                return length
        return 0

    def _take(self, end: int) -> str:
        end = max(end, self._emitted)
        piece = self._text[self._emitted : end]
        self._emitted = end
        return piece


def stream_text(token_ids: Iterable[int], decode: Decode, stop: Iterable[str] = ()) -> Iterator[str]:
    """Yield the reply spelled by ``token_ids`` as non-empty text pieces, cut at the first stop string.

    Closing this generator, or reaching a stop string, closes ``token_ids`` too (when it is a
    generator), so the model stops decoding at once.
    """
    detokenizer = IncrementalDetokenizer(decode)
    stops = StopStringFilter(stop)
    try:
        for token_id in token_ids:
            piece = stops.push(detokenizer.push(token_id))
            if piece:
                yield piece
            if stops.stopped:
                return
        piece = stops.push(detokenizer.flush()) + stops.flush()
        if piece:
            yield piece
    finally:
        close = getattr(token_ids, "close", None)
        if close is not None:
            close()
