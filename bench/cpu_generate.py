"""CPU generation engines side by side, on the same prompt token ids, in one run.

Engines (each runs in its own process, so its load time and peak memory are its own):

- ``transformers``: today's fallback, fp32 weights de-quantized from the GGUF;
- ``llamacpp``: rag's llama.cpp backend on the GGUF as it ships (several sequences per step);
- ``llamacpp-bare``: llama-cpp-python's high-level ``Llama`` on the same GGUF (what a user runs
  instead; rag's overhead is measured against it);
- ``ct2``: rag's CTranslate2 backend, int8, converted once from the GGUF (conversion timed);
- ``openvino``: rag's OpenVINO backend (the default), the GGUF re-quantized once to Q8_0
  (timed), continuous batching with a prefix cache;
- ``openvino-bare``: OpenVINO GenAI's ``LLMPipeline`` on the same Q8_0 file (what a user runs
  instead).

Per engine: load time; for a RAG prompt built by the real prompt builder (two demonstrations
and as many numbered SQuAD paragraphs as make ~1,500 tokens), time to first token, prefill and
the time of a whole answer; the same with the prefix cached (the same prompt but the question);
batch-1 decode tok/s; aggregate tok/s of 4 sequences through ``generate_batch`` and through 4
threads at once (the server's case); peak RSS; and greedy answers to the same QA questions,
scored against the transformers answers (agreement F1, identical answers) and against gold.
Plus the time to install each engine from pip's cache into a fresh venv (``--install``) and to
compile llama-cpp-python from its sdist as a fresh machine does (``--compile``, minutes).

    PYTHONPATH=. python bench/cpu_generate.py                   # qwen2.5-0.5b, 40 SQuAD questions
    PYTHONPATH=. python bench/cpu_generate.py --install --compile
    PYTHONPATH=. python bench/cpu_generate.py --small           # smollm2, the sample corpus

Prints figures, never pass/fail. Compare engines within one run (ratios): on shared CPUs every
figure moves with the load, printed before and after each engine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ENGINES = ("transformers", "llamacpp", "llamacpp-bare", "ct2", "openvino", "openvino-bare")
CONCURRENT = 4
DECODE_PROMPT = "Write a long, detailed story about a lighthouse keeper and a storm."
CONCURRENT_PROMPTS = (
    DECODE_PROMPT,
    "Explain in detail how a bank processes an international wire transfer.",
    "Describe, step by step, how to bake sourdough bread at home.",
    "Write a long letter to a friend about a trip through the Alps.",
)


# -- inputs (built once, in the parent) --------------------------------------------------------


def _messages(chat: Any) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in chat]


def build_inputs(args: argparse.Namespace, cache_dir: Path) -> dict[str, Any]:
    """The prompts every engine answers: built once with rag's prompt builder."""
    from rag.generate.llamacpp_backend import LlamaCppGenerator
    from rag.pipeline import AskOptions, Pipeline
    from rag.types import Chunk, Message

    items, passages = _qa_items(args, cache_dir)
    # The builder needs only the tokenizer (the budget); no engine loads here.
    pipeline = Pipeline(LlamaCppGenerator(args.model, cache_dir=cache_dir))
    options = AskOptions(shots=2, max_new_tokens=args.answer_tokens)

    def chat(question: str, texts: list[tuple[str, str]]) -> list[dict[str, str]]:
        chunks = [
            Chunk(id=i, doc_id=title, text=text, title=title)
            for i, (title, text) in enumerate(texts, 1)
        ]
        built = pipeline.build_messages(question, context=chunks, options=options)
        return _messages(built.messages)

    generator = pipeline.generator

    def tokens(raw: list[dict[str, str]]) -> int:
        return generator.count_prompt_tokens([Message(**m) for m in raw])  # type: ignore[arg-type]

    # As many passages as make the prompt about --prompt-tokens long (retrieval-sized blocks).
    count = 1
    while count < len(passages) and tokens(chat(items[0]["question"], passages[:count])) < (
        args.prompt_tokens
    ):
        count += 1
    rag_prompt = chat(items[0]["question"], passages[:count])
    follow_up = chat(items[1]["question"], passages[:count])
    return {
        "model": args.model,
        "rag_prompt": rag_prompt,
        "rag_prompt_tokens": tokens(rag_prompt),
        "rag_passages": count,
        "follow_up": follow_up,
        "decode_prompt": [{"role": "user", "content": DECODE_PROMPT}],
        "concurrent": [[{"role": "user", "content": p}] for p in CONCURRENT_PROMPTS],
        "qa": [
            {"id": it["id"], "answers": it["answers"], "messages": chat(it["question"], it["ctx"])}
            for it in items
        ],
        "answer_tokens": args.answer_tokens,
        "decode_tokens": args.decode_tokens,
        "repeats": args.repeats,
    }


def _qa_items(args: argparse.Namespace, cache_dir: Path) -> tuple[list[dict[str, Any]], list]:
    """QA items with their gold passage, and passages for the long RAG prompt."""
    if args.small:
        from eval.qa import read_qa_jsonl

        docs = ROOT / "corpora" / "sample" / "docs"
        texts = {p.name: p.read_text(encoding="utf-8") for p in sorted(docs.iterdir())}
        qa = read_qa_jsonl(ROOT / "corpora" / "sample" / "qa.jsonl")[: args.questions]
        items = [
            {
                "id": q.id,
                "question": q.question,
                "answers": list(q.answers),
                "ctx": [(d, texts[d]) for d in q.doc_ids if d in texts],
            }
            for q in qa
            if q.answerable
        ]
        return items, list(texts.items())
    from eval.qa import load_qa, sample

    every = load_qa("squad", cache_dir=cache_dir)
    chosen = sample(every, args.questions, args.seed)
    items = [
        {
            "id": q.id,
            "question": q.question,
            "answers": list(q.answers),
            "ctx": [(q.doc_ids[0] if q.doc_ids else "gold", q.context or "")],
        }
        for q in chosen
    ]
    # Paragraphs of the first question's article first (what retrieval would bring), then of
    # the other sampled questions' articles.
    articles = [q.doc_ids[0] if q.doc_ids else "" for q in chosen]
    seen: dict[tuple[str, str], None] = {}
    for article in dict.fromkeys(articles):
        for q in every:
            if q.context and q.doc_ids and q.doc_ids[0] == article:
                seen.setdefault((article, q.context), None)
    return items, list(seen)


# -- one engine (in a worker process) ----------------------------------------------------------


def make_generator(engine: str, model: str, cache_dir: Path) -> Any:
    if engine == "transformers":
        from rag.generate.transformers_backend import TransformersGenerator

        return TransformersGenerator(model, cache_dir=cache_dir, device="cpu")
    if engine == "llamacpp":
        from rag.generate.llamacpp_backend import LlamaCppGenerator

        return LlamaCppGenerator(model, cache_dir=cache_dir)
    if engine == "ct2":
        from rag.generate.ct2_backend import CT2Generator

        return CT2Generator(model, cache_dir=cache_dir)
    if engine == "openvino":
        from rag.generate.openvino_backend import OpenVINOGenerator

        return OpenVINOGenerator(model, cache_dir=cache_dir)
    if engine == "openvino-bare":
        from bench.cpu_engines import BareOpenVINOGenerator

        return BareOpenVINOGenerator(model, cache_dir=cache_dir)
    from bench.cpu_engines import BareLlamaGenerator

    return BareLlamaGenerator(model, cache_dir=cache_dir)


def prepare(engine: str, model: str, cache_dir: Path) -> float | None:
    """Convert what ``engine`` loads (outside the measured process); the conversion seconds."""
    from rag.convert import MARKER

    if engine == "ct2":
        from rag.generate.ct2_convert import ct2_folder

        folder = ct2_folder(model, cache_dir)
    elif engine.startswith("openvino"):
        from rag.generate import prepare_model

        folder = prepare_model(model, cache_dir, engine="openvino")[1].parent
    elif engine == "transformers":
        from rag.models import model_folder

        folder = model_folder(model, cache_dir)
    else:  # the GGUF joined and checked (the tokenizer folder is shared with ct2)
        from rag.models import gguf_path, tokenizer_folder

        tokenizer_folder(model, cache_dir)
        folder = gguf_path(model, cache_dir).parent
        if not (folder / MARKER).is_file():  # a one-part carrier: its marker is in the cache
            folder = cache_dir / "gguf" / model
    seconds = json.loads((folder / MARKER).read_text()).get("convert_seconds")
    return float(seconds) if seconds is not None else None


def run_engine(engine: str, inputs: dict[str, Any], cache_dir: Path) -> dict[str, Any]:
    from rag.generate import GenerationConfig
    from rag.types import Message

    def msgs(raw: list[dict[str, str]], tag: str = "") -> list[Message]:
        out = [Message(m["role"], m["content"]) for m in raw]  # type: ignore[arg-type]
        if tag:  # a different first token: no engine can reuse a cached prefix
            out[0] = Message(out[0].role, f"[{tag}] {out[0].content}")
        return out

    answer = GenerationConfig(max_new_tokens=inputs["answer_tokens"])
    decode = GenerationConfig(max_new_tokens=inputs["decode_tokens"])
    started = time.perf_counter()
    generator = make_generator(engine, inputs["model"], cache_dir)
    generator.warm_up()
    generator.count_tokens("warm")
    out: dict[str, Any] = {"load_s": time.perf_counter() - started, "load_avg": os.getloadavg()}
    generator.generate(msgs(inputs["decode_prompt"], "warm-up"), GenerationConfig(4))

    rag = [
        generator.generate(msgs(inputs["rag_prompt"], f"r{i}"), answer)
        for i in range(inputs["repeats"])
    ]
    ttft = statistics.median(r.first_token_ms or r.total_ms for r in rag)
    out["prompt_tokens"] = rag[0].prompt_tokens
    out["ttft_ms"] = ttft
    out["prefill_tok_s"] = rag[0].prompt_tokens / (ttft / 1000)
    out["answer_ms"] = statistics.median(r.total_ms for r in rag)
    out["answer_tokens"] = statistics.median(r.completion_tokens for r in rag)
    # The same system message and demonstrations, another question: what a cache can reuse.
    last_tag = f"r{inputs['repeats'] - 1}"
    follow = generator.generate(msgs(inputs["follow_up"], last_tag), answer)
    out["follow_up_ttft_ms"] = follow.first_token_ms

    single = generator.generate(msgs(inputs["decode_prompt"], "d"), decode)
    out["decode_tok_s"] = _decode_rate(single)
    out["decode_tokens"] = single.completion_tokens

    batch = [msgs(m, f"b{i}") for i, m in enumerate(inputs["concurrent"])]
    t0 = time.perf_counter()
    results = generator.generate_batch(batch, decode)
    out["batch4_tok_s"] = sum(r.completion_tokens for r in results) / (time.perf_counter() - t0)
    if engine in ("llamacpp", "ct2", "openvino"):  # the engines that take concurrent requests
        chats = [msgs(m, f"t{i}") for i, m in enumerate(inputs["concurrent"])]
        out["threads4_tok_s"] = _threaded(generator, chats, decode)

    answers = []
    for item in inputs["qa"]:
        result = generator.generate(msgs(item["messages"]), answer)
        answers.append({"id": item["id"], "text": result.text, "ms": result.total_ms})
    out["answers"] = answers
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["load_avg_after"] = os.getloadavg()
    return out


def _decode_rate(result: Any) -> float:
    decode_ms = result.total_ms - (result.first_token_ms or 0.0)
    return (result.completion_tokens - 1) / (decode_ms / 1000) if decode_ms > 0 else float("nan")


def _threaded(generator: Any, chats: list[Any], config: Any) -> float:
    """Aggregate tok/s of one stream per thread, all started together (the server's case)."""
    counts = [0] * len(chats)

    def work(i: int) -> None:
        counts[i] = generator.generate(chats[i], config).completion_tokens

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(chats))]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


# -- install costs -----------------------------------------------------------------------------


def install_seconds(*requirements: str, compile_sdist: bool = False) -> float | None:
    """Seconds to pip-install ``requirements`` into a fresh venv (from pip's cache), or to build
    the first one's wheel from the sdist with no cache (what a machine without the wheel pays)."""
    with tempfile.TemporaryDirectory(prefix="rag-install-") as scratch:
        venv = Path(scratch) / "venv"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "-q"]
        if compile_sdist:
            name = requirements[0].split("==")[0]
            command = [*pip, "wheel", "--no-deps", "--no-cache-dir", "--no-binary", name]
            command += [requirements[0], "-w", scratch]
        else:
            command = [*pip, "install", "--no-deps", *requirements]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"  {' '.join(command)} failed:\n{done.stderr[-1500:]}")
            return None
        return time.perf_counter() - started


# -- the report --------------------------------------------------------------------------------


def agreement(results: dict[str, dict[str, Any]], inputs: dict[str, Any]) -> None:
    from eval.metrics import f1_score, max_over_ground_truths

    gold = {item["id"]: item["answers"] for item in inputs["qa"]}
    reference = {a["id"]: a["text"] for a in results.get("transformers", {}).get("answers", [])}
    for figures in results.values():
        answers = figures.get("answers", [])
        if not answers:
            continue
        figures["gold_f1"] = statistics.mean(
            max_over_ground_truths(f1_score, a["text"], gold[a["id"]]) for a in answers
        )
        figures["answer_ms_median"] = statistics.median(a["ms"] for a in answers)
        if reference:
            figures["agree_f1"] = statistics.mean(
                f1_score(a["text"], reference[a["id"]]) for a in answers
            )
            figures["identical"] = sum(a["text"] == reference[a["id"]] for a in answers)


def print_table(results: dict[str, dict[str, Any]], inputs: dict[str, Any]) -> None:
    rows = [
        ("load s", "load_s", "{:.1f}"),
        ("convert s", "convert_s", "{:.0f}"),
        ("prompt tokens", "prompt_tokens", "{:.0f}"),
        ("TTFT ms", "ttft_ms", "{:.0f}"),
        ("prefill tok/s", "prefill_tok_s", "{:.0f}"),
        ("answer ms (TTFT+answer)", "answer_ms", "{:.0f}"),
        ("TTFT cached prefix ms", "follow_up_ttft_ms", "{:.0f}"),
        ("decode tok/s (b=1)", "decode_tok_s", "{:.1f}"),
        ("generate_batch(4) tok/s", "batch4_tok_s", "{:.1f}"),
        ("4 threads tok/s", "threads4_tok_s", "{:.1f}"),
        ("peak RSS MB", "peak_rss_mb", "{:.0f}"),
        ("QA answer ms (median)", "answer_ms_median", "{:.0f}"),
        ("F1 vs gold", "gold_f1", "{:.3f}"),
        ("F1 vs transformers", "agree_f1", "{:.3f}"),
        (f"identical (of {len(inputs['qa'])})", "identical", "{:.0f}"),
        ("install from cache s", "install_s", "{:.1f}"),
        ("compile sdist s", "compile_s", "{:.0f}"),
    ]
    names = list(results)
    print(f"\n{inputs['model']}: " + "  ".join(f"{n}" for n in names))
    print(f"{'':<26}" + "".join(f"{n:>16}" for n in names))
    for label, key, fmt in rows:
        cells = []
        for name in names:
            value = results[name].get(key)
            cells.append(fmt.format(value) if isinstance(value, int | float) else "-")
        print(f"{label:<26}" + "".join(f"{c:>16}" for c in cells))
    base = results.get("transformers", {})
    for name, figures in results.items():
        if name == "transformers" or "error" in figures or not base:
            continue
        ratios = [
            f"{label} x{figures[key] / base[key]:.2f}"
            for label, key in (("prefill", "prefill_tok_s"), ("decode", "decode_tok_s"))
            if figures.get(key) and base.get(key)
        ]
        if figures.get("answer_ms") and base.get("answer_ms"):
            ratios.append(f"answer x{base['answer_ms'] / figures['answer_ms']:.2f} faster")
        print(f"{name} vs transformers: " + ", ".join(ratios))
    for engine, call in (("llamacpp", "Llama"), ("openvino", "LLMPipeline")):
        ours, bare = results.get(engine, {}), results.get(f"{engine}-bare", {})
        if ours.get("answer_ms") and bare.get("answer_ms"):
            ratio = ours["answer_ms"] / bare["answer_ms"]
            print(f"rag {engine} answer time / bare {call}: {ratio:.2f}")
    for name, figures in results.items():
        if "error" in figures:
            print(f"{name}: failed: {figures['error']}")


def _worker(engine: str, inputs: Path, *flags: str) -> dict[str, Any]:
    """Run one engine's worker in a fresh process; its JSON result, or {"error": ...}."""
    done = subprocess.run(
        [sys.executable, __file__, "--worker", engine, "--inputs", str(inputs), *flags],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)},
    )
    if done.returncode != 0:
        print(done.stderr[-3000:])
        lines = done.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {done.returncode}"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    # Run as a script, this folder leads sys.path and bench/ingest.py would shadow the package.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    from rag.settings import load_settings

    settings = load_settings()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="[qwen2.5-0.5b; smollm2-135m with --small]")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--questions", type=int, default=None, help="QA questions [40; 3 small]")
    parser.add_argument("--answer-tokens", type=int, default=32)
    parser.add_argument("--prompt-tokens", type=int, default=1500, help="RAG prompt size")
    parser.add_argument("--decode-tokens", type=int, default=None, help="[128; 16 small]")
    parser.add_argument("--repeats", type=int, default=None, help="RAG prompt runs [3; 1 small]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--small", action="store_true", help="smollm2 on the sample corpus")
    parser.add_argument("--install", action="store_true", help="time pip installs from cache")
    parser.add_argument("--compile", action="store_true", help="time the llama.cpp sdist build")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--inputs", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    cache_dir = settings.cache_dir

    if args.worker:
        inputs = json.loads(args.inputs.read_text())
        if args.prepare:
            print(json.dumps({"convert_s": prepare(args.worker, inputs["model"], cache_dir)}))
        else:
            print(json.dumps(run_engine(args.worker, inputs, cache_dir)))
        return

    small = args.small
    args.model = args.model or ("smollm2-135m" if small else "qwen2.5-0.5b")
    args.questions = args.questions or (3 if small else 40)
    args.decode_tokens = args.decode_tokens or (16 if small else 128)
    args.repeats = args.repeats or (1 if small else 3)
    engines = [e for e in args.engines.split(",") if e]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engines {sorted(unknown)} (known: {', '.join(ENGINES)})")
    inputs = build_inputs(args, cache_dir)
    print(
        f"RAG prompt: {inputs['rag_prompt_tokens']} tokens ({inputs['rag_passages']} passages); "
        f"{len(inputs['qa'])} QA questions"
    )
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="rag-cpu-bench-") as scratch:
        path = Path(scratch) / "inputs.json"
        path.write_text(json.dumps(inputs))
        for engine in engines:
            print(f"[{engine}] load average {os.getloadavg()}", flush=True)
            prepared = _worker(engine, path, "--prepare")
            results[engine] = prepared if "error" in prepared else _worker(engine, path)
            results[engine]["convert_s"] = prepared.get("convert_s")
    if args.install or args.compile:
        from importlib.metadata import version

        packages = {
            "llamacpp": ("llama-cpp-python",),
            "ct2": ("ctranslate2",),
            "openvino": ("openvino-genai", "openvino", "openvino-tokenizers"),
        }
        for engine, names in packages.items():
            requirements = [f"{name}=={version(name)}" for name in names]
            figures = results.setdefault(engine, {})
            if args.install:
                figures["install_s"] = install_seconds(*requirements)
            if args.compile and engine == "llamacpp":
                figures["compile_s"] = install_seconds(*requirements, compile_sdist=True)
        for bare in ("llamacpp", "openvino"):
            if bare in results and f"{bare}-bare" in results:
                results[f"{bare}-bare"]["install_s"] = results[bare].get("install_s")
    agreement(results, inputs)
    print_table(results, inputs)
    print(f"load average at the end: {os.getloadavg()}")
    if args.out:
        args.out.write_text(json.dumps({"inputs": inputs, "results": results}, indent=2))


if __name__ == "__main__":
    main()
