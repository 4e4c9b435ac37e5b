"""Whether an answer was read from the context or copied from a demonstration; which passage
an uncited answer quotes.

Small models imitate the demonstration nearest the question so closely that they sometimes
repeat its answer word for word, even when the context says something else (qwen2.5-0.5b
answered "how do I report a stolen card?" with a demo's help-desk extension). Such an answer
looks fluent and cites a passage, yet nothing in the documents supports it. Phrases that occur in
a demonstration's answer but in no context passage are the tell.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from rag.citations import strip_markers

_WORD = re.compile(r"\w+")
#: Phrase length compared: long enough that ordinary phrasing ("the number of days") rarely
#: matches by chance, short enough to catch a copied clause.
NGRAM = 4
#: Share of the answer's phrases that must come from a demonstration and not the context.
COPIED_SHARE = 0.3


def _ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    words = _WORD.findall(strip_markers(text).lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def _union(texts: Iterable[str]) -> set[tuple[str, ...]]:
    grams: set[tuple[str, ...]] = set()
    for text in texts:
        grams |= _ngrams(text)
    return grams


def copied_from_demos(answer: str, demo_answers: Sequence[str], context: Sequence[str]) -> bool:
    """True when a large share of the answer's phrases come from demos and not from the context."""
    grams = _ngrams(answer)
    if not grams or not demo_answers:
        return False
    leaked = (grams & _union(demo_answers)) - _union(context)
    return len(leaked) >= max(1.0, COPIED_SHARE * len(grams))


#: Share of the answer's phrases a passage must hold for an uncited answer to be attributed to it.
QUOTED_SHARE = 0.5


def quoted_blocks(answer: str, context: Sequence[str]) -> list[int]:
    """1-based numbers of the context blocks the answer quotes, most quoted first.

    For answers the model wrote without ``[n]`` markers: a block that holds at least half of the
    answer's phrases is where the answer came from.
    """
    grams = _ngrams(answer)
    if not grams:
        return []
    shares = [(len(grams & _ngrams(text)) / len(grams), n) for n, text in enumerate(context, 1)]
    return [n for share, n in sorted(shares, key=lambda s: (-s[0], s[1])) if share >= QUOTED_SHARE]
