"""The whole decision report on a fixture corpus with the real small models: MiniLM retrieval,
smollm2-135m answering (a plumbing model: its scores mean nothing), a LoRA adapter trained for a
few steps, every variant, the report files, and a resumed rerun through the CLI."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from eval.evaluate import EvalRequest, evaluate
from eval.finetune import FinetuneRequest, finetune
from eval.lora import TrainConfig
from eval.results import ResultsFile
from eval.variants import VARIANTS
from rag.cli import build_app
from rag.settings import load_settings

FIXTURES = Path(__file__).parent / "fixtures"
MODEL = "smollm2-135m"


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch's threads stall when other processes share the 2 cores; one thread does not."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
def test_every_variant_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ingest.pipeline import ingest_paths

    cache_dir = load_settings().cache_dir
    index = tmp_path / "index"
    ingest_paths([FIXTURES / "corpus"], index)
    adapter = tmp_path / "adapter"
    meta = finetune(
        FinetuneRequest(
            model=MODEL,
            out=adapter,
            on="corpus",
            index=index,
            train_config=TrainConfig(rank=4, max_steps=3, batch_size=2, max_tokens=128),
        ),
        cache_dir=cache_dir,
        device="cpu",
        progress=False,
    ).meta
    assert meta["steps"] == 3 and meta["examples"] == 4
    assert (adapter / "adapter_config.json").is_file() and (adapter / "loss.json").is_file()

    out = tmp_path / "report"
    request = EvalRequest(
        qa=str(FIXTURES / "qa.jsonl"),
        index=index,
        model=MODEL,
        out=out,
        adapter=adapter,
        k=2,
        shots=1,
        sweep=(0, 1, 3),
        max_new_tokens=12,
        batch_size=4,
        target=0.9,
    )
    summary = evaluate(request, cache_dir=cache_dir, device="cpu", progress=False)

    rows = ResultsFile(out).rows()
    runs = Counter(row.run for row in rows)
    assert set(VARIANTS) <= set(runs)  # every variant, the LoRA ones included
    assert "rag@3shot" in runs  # the sweep point rag (0) and rag-few-shot (1) do not cover
    assert runs["oracle"] == 3 and all(runs[name] == 4 for name in runs if name != "oracle")
    report = json.loads((out / "report.json").read_text())
    assert {r["run"]: r["n"] for r in report["runs"]} == dict(runs)
    for run in report["runs"]:
        f1s = [row.f1 for row in rows if row.run == run["run"]]
        assert run["f1"]["value"] == pytest.approx(sum(f1s) / len(f1s))
    assert report["config"]["corpus_tokens"] > 100 and report["loss_curve"]
    assert report["recommendation"] == summary.recommendation
    assert any(line.startswith("Rule: lora-rag adds") for line in summary.recommendation)
    assert "## Fine-tuning" in (out / "report.md").read_text()
    assert (out / "report.html").read_text().count("<svg") >= 6  # five plots + the loss curve
    recall = {point["k"]: point["recall"] for point in report["recall_curve"]}
    assert recall[2] >= 2 / 3  # MiniLM finds these documents

    # A rerun through the CLI finds every row done: it adds nothing and rebuilds the report.
    before = (out / "results.jsonl").read_text()
    monkeypatch.setenv("RAG_CACHE_DIR", str(cache_dir))
    result = CliRunner().invoke(
        build_app(),
        [
            "eval",
            "--qa",
            str(FIXTURES / "qa.jsonl"),
            "--index",
            str(index),
            "--model",
            MODEL,
            "--adapter",
            str(adapter),
            "--k",
            "2",
            "--shots",
            "1",
            "--max-new-tokens",
            "12",
            "--batch-size",
            "4",
            "--target",
            "0.9",
            "--out",
            str(out),
            "--quiet",
            "--no-shots-sweep",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Rule: lora-rag adds" in result.output
    assert (out / "results.jsonl").read_text() == before
    assert json.loads((out / "report.json").read_text()) == report
