"""GPU embedding benchmark (issue 6): with a MiniLM-L6-shaped encoder on a GPU, what binds?

The model is all-MiniLM-L6-v2's architecture (BertModel: 6 layers, 384 hidden, 12 heads, 1536
intermediate, vocab 30522) with random weights, fp16 on CUDA; the tokenizer is a WordPiece
``tokenizers`` tokenizer (BERT normaliser and pre-tokeniser, [CLS]/[SEP], truncation at 256)
over a synthetic vocabulary of the same size, wrapped in ``PreTrainedTokenizerFast`` and called
the way sentence-transformers calls it. No download is needed. Texts are synthetic chunks of
about 256 tokens (the ingest default), mixing in-vocabulary words with words WordPiece splits.

Measured, per batch size: the tokenizer alone (chunks/s, tokens/s), the model alone on the
pre-tokenized batches (host-to-device copy, forward, mean pooling, normalisation, copy back),
and both in sequence as an embedder runs them; the slower of the first two binds. File reading
and parsing are the ingest benchmark's part (``bench/ingestion.py``). Imports only torch,
transformers, tokenizers. Run: ``PYTHONPATH=. python bench/gpu_embed.py --out embed.json``;
``--tiny`` runs a tiny encoder on the CPU (the tests use it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import string
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import transformers
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

MINILM: dict[str, Any] = {
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "max_position_embeddings": 512,
}
TINY = {
    **MINILM,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
}
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
MAX_TOKENS = 256


def synthetic_vocab(size: int, rng: random.Random) -> list[str]:
    """Specials, single characters and their ``##`` forms, then made-up words up to ``size``."""
    chars = string.ascii_lowercase + string.digits + ".,;:!?'()-"
    vocab = [*SPECIALS, *chars, *("##" + c for c in chars)]
    seen = set(vocab)
    while len(vocab) < size:
        word = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 9)))
        entry = word if rng.random() < 0.7 else "##" + word
        if entry not in seen:
            seen.add(entry)
            vocab.append(entry)
    return vocab


def build_tokenizer(vocab: list[str]) -> Any:
    """A BERT-style WordPiece fast tokenizer, as sentence-transformers would load for MiniLM."""
    ids = {token: index for index, token in enumerate(vocab)}
    core = Tokenizer(models.WordPiece(ids, unk_token="[UNK]"))
    core.normalizer = normalizers.BertNormalizer(lowercase=True)
    core.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
        sep_token="[SEP]", mask_token="[MASK]", model_max_length=MAX_TOKENS,
    )  # fmt: skip


def synthetic_chunks(count: int, vocab: list[str], rng: random.Random) -> list[str]:
    """Chunks of 140 words (~240 tokens): vocabulary words and unseen ones WordPiece splits."""
    words = [token for token in vocab[len(SPECIALS) :] if not token.startswith("##")]
    chunks = []
    for _ in range(count):
        picked = []
        for _ in range(140):
            if rng.random() < 0.8:
                picked.append(rng.choice(words))
            else:
                picked.append(rng.choice(words) + rng.choice(words))
            if rng.random() < 0.08:
                picked[-1] += rng.choice(".,;")
        chunks.append(" ".join(picked).capitalize())
    return chunks


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device: torch.device, fn: Callable[[], Any]) -> float:
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - started


def tokenize(tokenizer: Any, texts: list[str]) -> Any:
    return tokenizer(
        texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
    )


def encode(model: Any, batch: Any, device: torch.device) -> Any:
    """Forward + mean pooling + L2 normalisation, result back on the host (as an embedder does)."""
    ids = batch["input_ids"].to(device, non_blocking=True)
    mask = batch["attention_mask"].to(device, non_blocking=True)
    with torch.inference_mode():
        hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
        weights = mask[:, :, None].to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(pooled.float(), dim=-1).cpu()


def measure(
    model: Any, tokenizer: Any, chunks: list[str], batch_size: int, device: torch.device
) -> dict:
    groups = [chunks[i : i + batch_size] for i in range(0, len(chunks), batch_size)]
    batches = [tokenize(tokenizer, group) for group in groups]
    tokens = sum(int(batch["attention_mask"].sum()) for batch in batches)
    padded = sum(batch["input_ids"].numel() for batch in batches)
    encode(model, batches[0], device)  # warm-up: kernels, cuBLAS plans

    tokenizer_s = timed(device, lambda: [tokenize(tokenizer, group) for group in groups])
    model_s = timed(device, lambda: [encode(model, batch, device) for batch in batches])
    both_s = timed(device, lambda: [encode(model, tokenize(tokenizer, g), device) for g in groups])
    rates = {
        "tokenizer_chunks_s": len(chunks) / tokenizer_s,
        "tokenizer_tokens_s": tokens / tokenizer_s,
        "model_chunks_s": len(chunks) / model_s,
        "model_tokens_s": tokens / model_s,
        "model_padded_tokens_s": padded / model_s,
        "end_to_end_chunks_s": len(chunks) / both_s,
    }
    result: dict[str, Any] = {key: round(value, 1) for key, value in rates.items()}
    result["tokens_per_chunk"] = round(tokens / len(chunks), 1)
    result["binds"] = "tokenizer" if tokenizer_s > model_s else "model"
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON results")
    parser.add_argument("--tiny", action="store_true", help="tiny encoder, few chunks (CPU tests)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--chunks", type=int, default=None, help="chunks to embed per batch size")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.tiny and device.type == "cpu":
        # A tiny model gains nothing from threads, and torch's thread pool stalls badly when
        # other processes keep the cores busy (DESIGN.md, "Benchmarks on the 2-core machines").
        torch.set_num_threads(1)
    rng = random.Random(0)
    vocab = synthetic_vocab(MINILM["vocab_size"], rng)
    tokenizer = build_tokenizer(vocab)
    chunks = synthetic_chunks(args.chunks or (64 if args.tiny else 8192), vocab, rng)
    torch.manual_seed(0)
    model: Any = BertModel(BertConfig(**(TINY if args.tiny else MINILM)), add_pooling_layer=False)
    model = model.to(device, torch.float16 if device.type == "cuda" else torch.float32).eval()
    data: dict[str, Any] = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": args.device,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "cpu_count": os.cpu_count(),
        "chunks": len(chunks),
        "batches": {},
    }
    for batch_size in (32, 256):
        data["batches"][str(batch_size)] = result = measure(
            model, tokenizer, chunks, batch_size, device
        )
        args.out.write_text(json.dumps(data, indent=2))
        print(f"batch {batch_size}: {result}", flush=True)
    return data


if __name__ == "__main__":
    main()
