"""The answering pipeline: question -> (condensed query) -> hits -> prompt -> streamed answer.

One object holds the loaded parts (generator, index, embedder, example bank) and answers many
questions; the server, the CLI and the evaluation all go through it, so the prompt a user sees
answered is the prompt the evaluation measures and the fine-tuning trains on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rag.citations import is_refusal, resolve_citations
from rag.conversation import condense_query
from rag.defaults import DEFAULT_K, DEFAULT_SHOTS
from rag.errors import ConfigError
from rag.examples import ExampleBank
from rag.generate.base import GenerationConfig, Generator
from rag.grounding import copied_from_demos, quoted_blocks
from rag.prompt import PromptBuild, PromptBuilder
from rag.retrieve import Retriever, SearchMode, parse_mode
from rag.types import Answer, Chunk, Citation, Hit, Message, Timings

if TYPE_CHECKING:
    from rag.embed import Embedder
    from rag.generate.remote import Remote
    from rag.models import CondenseMode
    from rag.search_index import SearchIndex

__all__ = ["AskOptions", "Pipeline", "PromptBuild", "build_pipeline"]


@dataclass
class AskOptions:
    """How to answer one question. ``min_score=None`` means the pipeline's default floor."""

    k: int = DEFAULT_K
    shots: int = DEFAULT_SHOTS
    retrieval: bool = True
    source_glob: str | None = None
    doc_ids: tuple[str, ...] = ()
    min_score: float | None = None
    mmr: bool = False
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    #: ``hybrid`` (reciprocal rank fusion of dense and keyword), ``dense`` or ``keyword``.
    mode: SearchMode = "hybrid"
    #: Most prompt tokens (besides the model's window): a server's cap on one request's work.
    max_prompt_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.k < 0:
            raise ConfigError(f"k must be >= 0, got {self.k}")
        if self.shots < 0:
            raise ConfigError(f"shots must be >= 0, got {self.shots}")
        parse_mode(self.mode)

    def generation(self) -> GenerationConfig:
        return GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=self.stop,
            seed=self.seed,
        )


class Pipeline:
    """Answers questions over an index with a generator, few-shot demos and citations.

    ``index`` and ``embedder`` are optional: without them only closed-book answers (or answers
    over a given ``context``) are possible. ``min_score`` is the default relevance floor;
    ``condense`` says how a follow-up becomes a standalone query (``model``, ``rules``, ``off``).
    """

    def __init__(
        self,
        generator: Generator,
        *,
        index: SearchIndex | None = None,
        embedder: Embedder | None = None,
        examples: ExampleBank | None = None,
        refusal: str = "I don't know.",
        min_score: float | None = None,
        condense: CondenseMode = "model",
    ) -> None:
        if not refusal.strip():
            raise ConfigError('refusal must be a non-empty text, e.g. "I don\'t know."')
        if condense not in ("model", "rules", "off"):
            raise ConfigError(f"condense must be model, rules or off, got {condense!r}")
        if index is not None and embedder is None:
            raise ConfigError("an index needs the embedder it was built with (pass embedder=...)")
        self.generator = generator
        self.index = index
        self.embedder = embedder
        self.examples = examples if examples is not None else ExampleBank([], embedder=embedder)
        self.refusal = refusal
        self.min_score = min_score
        self.condense = condense
        self.retriever = (
            Retriever(index, embedder) if index is not None and embedder is not None else None
        )
        self.prompts = PromptBuilder(generator, refusal=refusal)

    def using(
        self, *, index: SearchIndex | None = None, generator: Generator | None = None
    ) -> Pipeline:
        """The same loaded parts over another ``index`` (a newer generation) and/or with another
        ``generator`` (the LoRA adapter's); construction is cheap, nothing is reloaded."""
        return Pipeline(
            self.generator if generator is None else generator,
            index=self.index if index is None else index,
            embedder=self.embedder,
            examples=self.examples,
            refusal=self.refusal,
            min_score=self.min_score,
            condense=self.condense,
        )

    # -- retrieval ---------------------------------------------------------------------------

    def search(self, query: str, options: AskOptions | None = None) -> list[Hit]:
        """The hits retrieval returns for ``query`` (no generation)."""
        options = options or AskOptions()
        if self.retriever is None:
            raise ConfigError(
                "this pipeline has no index: pass --index DIR (build one with `rag ingest`)"
            )
        return self.retriever.search(
            query,
            k=options.k,
            mode=options.mode,
            source_glob=options.source_glob,
            doc_ids=options.doc_ids,
            min_score=self.min_score if options.min_score is None else options.min_score,
            mmr=options.mmr,
        )

    def standalone_query(self, question: str, history: Sequence[Message]) -> str:
        """The follow-up ``question`` rewritten to stand alone, for retrieval."""
        if not history or self.condense == "off":
            return question
        generator = self.generator if self.condense == "model" else None
        return condense_query(question, history, generator=generator)

    # -- prompting ---------------------------------------------------------------------------

    def build_messages(
        self,
        question: str,
        *,
        history: Sequence[Message] = (),
        options: AskOptions | None = None,
        context: Sequence[Chunk] | None = None,
    ) -> PromptBuild:
        """The exact chat messages ``ask`` would send (retrieval included when it applies)."""
        options = options or AskOptions()
        hits, query, _ = self._gather(question, history, options, context)
        return self._build(question, history, options, hits, query, context is not None)

    def _gather(
        self,
        question: str,
        history: Sequence[Message],
        options: AskOptions,
        context: Sequence[Chunk] | None,
    ) -> tuple[list[Hit], str, float]:
        """Hits for the question: the given context, retrieval, or none (closed book)."""
        started = time.perf_counter()
        if context is not None:
            hits = [Hit(chunk=c, score=1.0, ranks={"given": i}) for i, c in enumerate(context, 1)]
            return hits, question, 0.0
        if not options.retrieval or options.k == 0:
            return [], question, 0.0
        query = self.standalone_query(question, history)
        hits = self.search(query, options)
        return hits, query, (time.perf_counter() - started) * 1000

    def _build(
        self,
        question: str,
        history: Sequence[Message],
        options: AskOptions,
        hits: Sequence[Hit],
        query: str,
        given_context: bool,
    ) -> PromptBuild:
        closed_book = not given_context and (not options.retrieval or options.k == 0)
        demos = self.examples.select(question, options.shots)
        return self.prompts.build(
            question,
            hits=hits,
            demos=demos,
            history=history,
            closed_book=closed_book,
            max_new_tokens=options.max_new_tokens,
            max_prompt_tokens=options.max_prompt_tokens,
            query=query,
        )

    # -- answering ---------------------------------------------------------------------------

    def ask(
        self,
        question: str,
        *,
        history: Sequence[Message] = (),
        options: AskOptions | None = None,
        context: Sequence[Chunk] | None = None,
    ) -> Answer:
        """Answer ``question``; ``context`` given means it is used instead of retrieval."""
        answer: Answer | None = None
        for item in self.stream(question, history=history, options=options, context=context):
            if isinstance(item, Answer):
                answer = item
        assert answer is not None  # stream always ends with one Answer
        return answer

    def stream(
        self,
        question: str,
        *,
        history: Sequence[Message] = (),
        options: AskOptions | None = None,
        context: Sequence[Chunk] | None = None,
    ) -> Iterator[str | Answer]:
        """Yield text deltas as they are generated, then exactly one final ``Answer``."""
        options = options or AskOptions()
        if not question.strip():
            raise ConfigError("the question is empty: ask something")
        started = time.perf_counter()
        hits, query, retrieve_ms = self._gather(question, history, options, context)
        timings = Timings(retrieve_ms=retrieve_ms)
        if self._uncovered(options, hits, context):
            yield self.refusal
            timings.total_ms = (time.perf_counter() - started) * 1000
            yield Answer(text=self.refusal, refused=True, timings=timings, query=query)
            return
        prompt_started = time.perf_counter()
        build = self._build(question, history, options, hits, query, context is not None)
        timings.prompt_ms = (time.perf_counter() - prompt_started) * 1000
        parts: list[str] = []
        finish, prompt_tokens, completion_tokens = "stop", build.prompt_tokens, 0
        for delta in self.generator.stream(build.messages, options.generation()):
            if delta.text:
                if timings.first_token_ms is None:
                    timings.first_token_ms = (time.perf_counter() - started) * 1000
                parts.append(delta.text)
                yield delta.text
            if delta.finish_reason is not None:
                finish = delta.finish_reason
                prompt_tokens = delta.prompt_tokens or prompt_tokens
                completion_tokens = delta.completion_tokens or 0
        timings.total_ms = (time.perf_counter() - started) * 1000
        yield self._answer(
            "".join(parts), build, list(hits), timings, prompt_tokens, completion_tokens, finish
        )

    def ask_batch(
        self,
        questions: Sequence[str],
        *,
        options: AskOptions | None = None,
        contexts: Sequence[Sequence[Chunk] | None] | None = None,
    ) -> list[Answer]:
        """Answer many single-turn questions with one batched generation (the evaluation's path)."""
        options = options or AskOptions()
        if contexts is not None and len(contexts) != len(questions):
            raise ConfigError(
                f"got {len(questions)} questions but {len(contexts)} contexts: "
                "pass one context (or None) per question"
            )
        answers: list[Answer | None] = [None] * len(questions)
        pending: list[tuple[int, PromptBuild, list[Hit], Timings]] = []
        for i, question in enumerate(questions):
            started = time.perf_counter()
            context = contexts[i] if contexts is not None else None
            hits, query, retrieve_ms = self._gather(question, (), options, context)
            timings = Timings(retrieve_ms=retrieve_ms)
            if self._uncovered(options, hits, context):
                timings.total_ms = (time.perf_counter() - started) * 1000
                answers[i] = Answer(text=self.refusal, refused=True, timings=timings, query=query)
                continue
            prompt_started = time.perf_counter()
            build = self._build(question, (), options, hits, query, context is not None)
            timings.prompt_ms = (time.perf_counter() - prompt_started) * 1000
            pending.append((i, build, hits, timings))
        if pending:
            results = self.generator.generate_batch(
                [build.messages for _, build, _, _ in pending], options.generation()
            )
            for (i, build, hits, timings), result in zip(pending, results, strict=True):
                timings.first_token_ms = result.first_token_ms
                timings.total_ms = timings.retrieve_ms + timings.prompt_ms + result.total_ms
                answers[i] = self._answer(
                    result.text,
                    build,
                    hits,
                    timings,
                    result.prompt_tokens or build.prompt_tokens,
                    result.completion_tokens,
                    result.finish_reason,
                )
        return [a for a in answers if a is not None]

    def _uncovered(
        self, options: AskOptions, hits: Sequence[Hit], context: Sequence[Chunk] | None
    ) -> bool:
        """Retrieval ran and found nothing above the floor: the documents do not say."""
        if context is not None:
            return not context
        return options.retrieval and options.k > 0 and not hits

    def _answer(
        self,
        text: str,
        build: PromptBuild,
        hits: list[Hit],
        timings: Timings,
        prompt_tokens: int,
        completion_tokens: int,
        finish: str,
    ) -> Answer:
        warnings: list[str] = []
        demo_answers = [demo.answer for demo in build.demos if demo.answerable]
        if build.context and copied_from_demos(text, demo_answers, [c.text for c in build.context]):
            # A demo's answer, not the documents': say the documents do not support an answer.
            warnings.append(
                "withdrawn: the model repeated a demonstration, not the documents: "
                f"{text.strip()!r}"
            )
            text = self.refusal
        refused = is_refusal(text, self.refusal)
        citations, invalid = resolve_citations(text, build.context)
        if not refused and not citations:
            blocks = quoted_blocks(text, [c.text for c in build.context])
            citations = [Citation(n, build.context[n - 1], inferred=True) for n in blocks]
        return Answer(
            warnings=warnings,
            text=text.strip(),
            citations=[] if refused else citations,
            refused=refused,
            hits=hits,
            timings=timings,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            query=build.query,
            dropped=list(build.dropped),
            invalid_markers=invalid,
            finish_reason=finish,
        )


def build_pipeline(
    index: Path | SearchIndex | None,
    model: str,
    *,
    cache_dir: Path,
    device: str | None = None,
    adapter: Path | None = None,
    examples_path: Path | None = None,
    remote: Remote | None = None,
    refusal: str = "I don't know.",
    min_score: float | None = None,
    engine: str = "auto",
) -> Pipeline:
    """A pipeline over ``index`` (an index folder, opened here, or an open index), with the
    embedder named in its manifest and the generator ``model`` (served by ``remote`` if given).

    Models load lazily (on the first question or ``generator.warm_up()``). ``min_score=None``
    takes the embedder's calibrated floor from the registry (none for other embedders). ``engine``
    picks the local generation engine (see ``rag.generate.choose_engine``).
    """
    from rag.embed import load_embedder
    from rag.generate import load_generator
    from rag.models import DEFAULT_EMBEDDER, condense_mode, relevance_floor

    if isinstance(index, Path):
        from rag.store import Index

        index = Index.open(index)
    embedder_name = index.manifest.embedder if index is not None else DEFAULT_EMBEDDER
    embedder = load_embedder(embedder_name, device=device, cache_dir=cache_dir)
    if min_score is None:
        min_score = relevance_floor(embedder_name)
    examples = (
        ExampleBank.load(examples_path, embedder=embedder)
        if examples_path is not None
        else ExampleBank.default(embedder=embedder)
    )
    generator = load_generator(
        model,
        cache_dir=cache_dir,
        device=device,
        adapter=adapter,
        remote=remote,
        engine=engine,
    )
    return Pipeline(
        generator,
        index=index,
        embedder=embedder,
        examples=examples,
        refusal=refusal,
        min_score=min_score,
        condense=condense_mode(model),
    )
