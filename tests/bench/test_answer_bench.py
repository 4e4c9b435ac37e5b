"""bench/answer.py answers real questions from a real index, once per engine and passage count."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_one_run_compares_passage_counts_on_the_sample_corpus(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAG_CACHE_DIR": os.environ["RAG_TEST_CACHE"]}
    index = tmp_path / "index"
    rag = Path(sys.executable).parent / "rag"
    ingest = [str(rag), "ingest", str(ROOT / "corpora/sample/docs"), "--index", str(index)]
    done = subprocess.run(ingest, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    command = [
        *("bench/answer.py", "--index", str(index), "--qa", "corpora/sample/qa.jsonl"),
        *("--model", "smollm2-135m", "--engines", "ctranslate2", "--k", "1,2", "--n", "3"),
        *("--max-new-tokens", "8", "--bare"),
    ]
    done = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = done.stdout.strip().splitlines()[-2:]
    prompts = {}
    for line in summaries:
        found = re.match(r"ctranslate2, k=(\d): median answer \d+ ms, prompt (\d+) tokens", line)
        assert found, line
        prompts[int(found[1])] = int(found[2])
        assert "overhead over the bare call" in line and "gold document retrieved" in line
    assert 0 < prompts[1] < prompts[2]  # a second passage lengthens the median prompt
