"""The public corpora, fetched for real from PyPI (the bigbench sdist is 358 MB: slow).

`bank` is fetched for real by the quickstart test; this covers the two sets inside bigbench.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ingest.corpora import fetch

pytestmark = pytest.mark.slow


def questions(path: Path) -> list[dict[str, object]]:
    with path.open() as lines:
        return [json.loads(line) for line in lines]


def test_squad_and_counterfactual_fetch_for_real() -> None:
    cache = Path(os.environ["RAG_TEST_CACHE"])
    squad = fetch("squad", cache)
    assert squad.qa_path is not None
    assert len(list(squad.docs_dir.iterdir())) == 48
    qa = questions(squad.qa_path)
    assert len(qa) == 10_565
    first = qa[0]
    assert first["answers"] and first["doc_ids"]
    assert (squad.docs_dir / str(first["doc_ids"][0])).exists()  # type: ignore[index]

    counterfactual = fetch("counterfactual", cache)
    assert counterfactual.qa_path is not None
    assert len(questions(counterfactual.qa_path)) == 17_528
