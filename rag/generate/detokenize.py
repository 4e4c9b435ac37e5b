"""Token ids -> text, one token at a time, without splitting characters or leaking stop strings.

A byte-level tokenizer may spread one character (an emoji, a CJK character) over several
tokens; decoding a prefix then ends in U+FFFD. A stop string may arrive split across tokens
("Ques" + "tion:"). So text is released only when it is final: whole characters, and no tail
that could still grow into a stop string. Streamed pieces joined equal the text decoded at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

_REPLACEMENT = "\ufffd"


class Decoder(Protocol):
    def decode(self, ids: list[int], skip_special_tokens: bool = ...) -> str: ...


class TextStream:
    """The text of one completion, fed token by token.

    ``push`` returns the text that became final; ``finish`` returns the held-back rest. After a
    stop string is seen, ``stopped`` is true and nothing more is released (the stop string itself
    never is).
    """

    def __init__(self, tokenizer: Decoder, stop: Sequence[str] = ()) -> None:
        self._tokenizer = tokenizer
        self._stop = tuple(s for s in stop if s)
        self._ids: list[int] = []
        # Decoding restarts from ``_prefix`` (a few tokens back) so that the cost per token stays
        # constant and tokenizers that drop a leading space see the same context.
        self._prefix = 0
        self._read = 0
        self._text = ""  # all final-character text decoded so far
        self._emitted = 0  # how much of _text has been released
        self.stopped = False

    @property
    def text(self) -> str:
        """Everything released so far (joined pieces)."""
        return self._text[: self._emitted]

    def push(self, token_id: int) -> str:
        if self.stopped:
            return ""
        self._ids.append(token_id)
        head = self._tokenizer.decode(
            self._ids[self._prefix : self._read], skip_special_tokens=True
        )
        full = self._tokenizer.decode(self._ids[self._prefix :], skip_special_tokens=True)
        if len(full) > len(head) and not full.endswith(_REPLACEMENT):
            self._text += full[len(head) :]
            self._prefix, self._read = self._read, len(self._ids)
        return self._release(final=False)

    def finish(self) -> str:
        """Release what was held back (a partial stop-string match that never completed)."""
        if self.stopped:
            return ""
        if self._read < len(self._ids):  # an incomplete character at the very end
            head = self._tokenizer.decode(
                self._ids[self._prefix : self._read], skip_special_tokens=True
            )
            full = self._tokenizer.decode(self._ids[self._prefix :], skip_special_tokens=True)
            self._text += full[len(head) :]
            self._prefix = self._read = len(self._ids)
        return self._release(final=True)

    def _release(self, *, final: bool) -> str:
        start = self._emitted
        if self._stop:
            # A stop string can only start where it could not have been found before.
            search_from = max(0, start - max(len(s) for s in self._stop) + 1)
            hits = [i for i in (self._text.find(s, search_from) for s in self._stop) if i >= 0]
            if hits:
                cut = max(min(hits), start)
                self._emitted = cut
                self.stopped = True
                return self._text[start:cut]
        end = len(self._text) if final else len(self._text) - self._held_back()
        end = max(end, start)
        self._emitted = end
        return self._text[start:end]

    def _held_back(self) -> int:
        """Length of the longest tail of the text that is a proper prefix of a stop string."""
        longest = 0
        for stop in self._stop:
            for size in range(min(len(stop) - 1, len(self._text)), longest, -1):
                if self._text.endswith(stop[:size]):
                    longest = size
                    break
        return longest
