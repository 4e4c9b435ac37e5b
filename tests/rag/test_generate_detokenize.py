"""Incremental detokenization and stop strings, with a byte-level fake tokenizer: one token per
UTF-8 byte, so every multibyte character arrives split, the hardest case a real tokenizer has."""

from __future__ import annotations

from rag.generate.detokenize import TextStream


class ByteTokenizer:
    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return bytes(ids).decode("utf-8", errors="replace")


def _run(text: str, stop: tuple[str, ...] = ()) -> tuple[list[str], TextStream]:
    tokenizer = ByteTokenizer()
    stream = TextStream(tokenizer, stop)
    pieces = [stream.push(token) for token in tokenizer.encode(text)]
    pieces.append(stream.finish())
    return [p for p in pieces if p], stream


def test_multibyte_characters_are_never_split() -> None:
    text = "héllo 🙂 wörld, 東京 — ok"
    pieces, stream = _run(text)
    assert "".join(pieces) == text == stream.text
    assert all("\ufffd" not in piece for piece in pieces)
    assert "🙂" in pieces and "東" in pieces  # released whole, once complete


def test_stop_string_split_across_tokens_is_cut_and_never_emitted() -> None:
    pieces, stream = _run("Answer: yes [1]\nQuestion: next?", stop=("Question:",))
    assert "".join(pieces) == "Answer: yes [1]\n" == stream.text
    assert stream.stopped
    assert not any("Q" in piece for piece in pieces)


def test_earliest_of_several_stop_strings_wins() -> None:
    pieces, _ = _run("one END two STOP three", stop=("STOP", "END"))
    assert "".join(pieces) == "one "


def test_partial_stop_match_is_released_when_it_never_completes() -> None:
    tokenizer = ByteTokenizer()
    stream = TextStream(tokenizer, ("Question:",))
    held = [stream.push(token) for token in tokenizer.encode("See Ques")]
    assert "".join(held) == "See "  # "Ques" could still become the stop string
    assert stream.finish() == "Ques"
    assert stream.text == "See Ques" and not stream.stopped


def test_nothing_is_released_after_a_stop() -> None:
    tokenizer = ByteTokenizer()
    stream = TextStream(tokenizer, ("\n\n",))
    out = "".join(stream.push(t) for t in tokenizer.encode("done\n\nmore text"))
    assert out + stream.finish() == "done"
