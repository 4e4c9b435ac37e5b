"""Load check for `rag serve`: N concurrent streaming clients, a fixed number of requests.

    python bench/serve_load.py --fake --clients 32 --requests 640
    python bench/serve_load.py --fake --workers 1,2 --clients 32 --requests 640
    python bench/serve_load.py --index DIR --model smollm2-135m --clients 4 --requests 16
    python bench/serve_load.py --url http://127.0.0.1:8000 --api-key KEY --clients 8

`--fake` starts a server whose generator answers instantly (no retrieval: the `closed-book`
variant), so the figures are the server's own overhead: HTTP, validation, the queue, the hop to a
worker thread, prompt building and SSE. Otherwise it starts `rag serve` with a real model, or
talks to a running server (`--url`). Servers it starts listen on loopback only and are stopped at
the end. Prints throughput, latency and time-to-first-token percentiles, the 429s (deliberate:
the queue is bounded) and every other error (which must be zero).

`--workers 1,2` runs the load once per worker count, each against a fresh server with that many
replicas (`rag serve --workers N`; the fake server runs its workers the same way), and ends with
each count's answers/s as a ratio to the first. The client shares the machine: on 2 cores a
second worker competes with the client and the first worker for the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

FAKE_ANSWER = "The answer is twenty five days of paid leave a year, says the handbook [1]."
#: Questions the sample corpus (corpora/sample) answers; `--qa FILE` takes another set's.
QUESTIONS = (
    "How long do I have to return an unused kettle?",
    "How long is the warranty on the heating element?",
    "What is the capacity of the Aurora 1.7?",
    "Which temperature does the Steep Pro use for green tea?",
    "How much does express delivery cost?",
    "Who founded Lumen Kettle Works?",
)


@dataclass
class Result:
    status: int
    latency_s: float
    first_token_s: float | None = None
    tokens: int = 0
    error: str | None = None


@dataclass
class Tally:
    results: list[Result] = field(default_factory=list)
    wall_s: float = 0.0
    cpu: list[str] = field(default_factory=list)


class Connection:
    """One keep-alive HTTP/1.1 connection that speaks just enough HTTP for this benchmark.

    A general client (httpx) spends more CPU per request than the server under test; on a
    2-core machine the figures would then measure the client.
    """

    def __init__(self, url: str, api_key: str | None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.hostname is None:
            raise SystemExit(f"--url must be http://HOST:PORT, got {url}")
        self.host, self.port = parts.hostname, parts.port or 80
        auth = f"Authorization: Bearer {api_key}\r\n" if api_key else ""
        self.head = (
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Type: application/json\r\nAccept: text/event-stream\r\n{auth}"
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes, on_data: Callable[[bytes], None]) -> int:
        """Send one request; ``on_data`` gets the body as it arrives; returns the status."""
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.reader, self.writer
        writer.write(self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
        status = int((await reader.readline()).split()[1])
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip().lower()
        if headers.get("transfer-encoding") == "chunked":
            while size := int((await reader.readline()).split(b";")[0], 16):
                on_data((await reader.readexactly(size + 2))[:-2])
            await reader.readline()
        else:
            on_data(await reader.readexactly(int(headers.get("content-length", "0"))))
        if headers.get("connection") == "close":
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def one_request(connection: Connection, body: bytes) -> Result:
    started = time.perf_counter()
    first: float | None = None
    pieces = 0
    done = False
    error: str | None = None
    buffer = b""

    def on_data(data: bytes) -> None:
        nonlocal buffer, first, pieces, done, error
        buffer += data
        *events, buffer = buffer.split(b"\n\n")
        for event in events:
            if not event.startswith(b"data: "):
                continue
            if event == b"data: [DONE]":
                done = True
                continue
            payload = json.loads(event[6:])
            if "error" in payload:
                error = payload["error"]["message"]
            choices = payload.get("choices") or [{}]
            if choices[0].get("delta", {}).get("content"):
                pieces += 1
                if first is None:
                    first = time.perf_counter() - started

    try:
        status = await connection.post(body, on_data)
    except Exception as failure:
        connection.close()
        return Result(
            0, time.perf_counter() - started, error=f"{type(failure).__name__}: {failure}"
        )
    elapsed = time.perf_counter() - started
    if status != 200:
        return Result(status, elapsed, error=buffer.decode(errors="replace")[:200])
    if error is None and not done:
        error = "the stream ended without [DONE]"
    return Result(status, elapsed, first, pieces, error)


def request_body(model: str, question: str, max_tokens: int) -> bytes:
    message = {"role": "user", "content": question}
    body = {"model": model, "messages": [message], "stream": True, "max_tokens": max_tokens}
    return json.dumps(body).encode()


def read_questions(path: Path | None) -> list[str]:
    """The answerable questions of a QA JSONL file, or the sample corpus's."""
    if path is None:
        return list(QUESTIONS)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    questions = [r["question"] for r in rows if r.get("answerable", True)]
    if not questions:
        raise SystemExit(f"{path} holds no answerable questions")
    return questions


async def load(
    url: str,
    *,
    clients: int,
    requests: int,
    model: str,
    api_key: str | None,
    max_tokens: int,
    questions: Sequence[str],
) -> Tally:
    tally = Tally()
    counter = iter(range(requests))
    bodies = [request_body(model, q, max_tokens) for q in questions]

    async def snapshot() -> None:
        await asyncio.sleep(1.0)
        tally.cpu = await asyncio.to_thread(cpu_snapshot)

    async def worker(connection: Connection) -> None:
        for n in counter:
            tally.results.append(await one_request(connection, bodies[n % len(bodies)]))
        connection.close()

    connections = [Connection(url, api_key) for _ in range(clients)]
    warm_up = await one_request(connections[0], bodies[0])  # not counted
    if warm_up.error:
        raise SystemExit(f"the warm-up request failed: {warm_up.status} {warm_up.error}")
    started = time.perf_counter()
    watcher = asyncio.create_task(snapshot())
    await asyncio.gather(*(worker(c) for c in connections))
    tally.wall_s = time.perf_counter() - started
    if not watcher.done():
        watcher.cancel()
    return tally


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def report(tally: Tally, *, clients: int, label: str) -> int:
    ok = [r for r in tally.results if r.status == 200 and r.error is None]
    rejected = [r for r in tally.results if r.status == 429]
    errors = [r for r in tally.results if r not in ok and r.status != 429]
    latencies = [r.latency_s * 1000 for r in ok]
    firsts = [r.first_token_s * 1000 for r in ok if r.first_token_s is not None]
    print(f"== {label}: {len(tally.results)} requests, {clients} concurrent streaming clients")
    print(f"throughput     {len(ok) / tally.wall_s:8.1f} answers/s   ({tally.wall_s:.2f} s wall)")
    slowest = max(latencies, default=float("nan"))
    print(
        f"latency  ms    p50 {percentile(latencies, 50):8.1f}   "
        f"p95 {percentile(latencies, 95):8.1f}   max {slowest:8.1f}"
    )
    print(f"first token ms p50 {percentile(firsts, 50):8.1f}   p95 {percentile(firsts, 95):8.1f}")
    print(f"stream pieces  {sum(r.tokens for r in ok) / max(1, len(ok)):8.1f} per answer")
    print(f"429 (queue full, deliberate) {len(rejected)}")
    print(f"errors (must be 0)           {len(errors)}")
    for result in errors[:5]:
        print(f"  status {result.status}: {result.error}")
    if tally.cpu:
        print("top, 1 s into the run:")
        print("\n".join("  " + line for line in tally.cpu[6:13]))
    return 1 if errors else 0


# -- servers this script starts ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_ready(
    url: str, process: subprocess.Popen[bytes], timeout: float, workers: int = 1
) -> None:
    """Until ``workers`` different worker processes have answered ``/readyz`` with 200."""
    import httpx

    ready: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with {process.returncode} before it was ready")
        try:
            reply = httpx.get(f"{url}/readyz", timeout=2)
            if reply.status_code == 200:
                ready.add(reply.headers.get("x-rag-worker", ""))
                if len(ready) >= workers:
                    return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"the server at {url} was not ready after {timeout:.0f} s")


def start_server(args: argparse.Namespace, port: int, workers: int) -> subprocess.Popen[bytes]:
    if args.fake:
        command = [
            sys.executable,
            __file__,
            "--serve-fake",
            "--port",
            str(port),
            "--concurrency",
            str(args.concurrency),
            "--workers",
            str(workers),
        ]
    else:
        command = [
            sys.executable,
            "-m",
            "rag.cli",
            "serve",
            "--index",
            str(args.index),
            "--model",
            args.model,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--concurrency",
            str(args.concurrency),
            "--queue-size",
            str(args.queue_size),
            "--workers",
            str(workers),
        ]
    return subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE if args.quiet_server else None
    )


#: The fake server's concurrency and queue size, for its worker processes.
FAKE_ENV = "RAG_BENCH_FAKE"


def fake_app() -> Any:
    """The fake server's app (in each worker, with ``--workers``): its generator answers at once,
    so what is left is the server's own cost."""
    from rag.generate.base import Delta, GenerationConfig, Generator
    from rag.pipeline import Pipeline
    from rag.types import Message
    from serve.app import create_app
    from serve.replicas import metrics_dir
    from serve.state import Pipelines, ServerConfig, ServerState

    class InstantGenerator(Generator):
        name = "instant"
        words = FAKE_ANSWER.split(" ")

        def stream(self, messages: Sequence[Message], config: GenerationConfig) -> Iterator[Delta]:
            words = self.words[: config.max_new_tokens]
            for i, word in enumerate(words):
                yield Delta(text=word if i == 0 else " " + word)
            yield Delta(
                finish_reason="stop",
                prompt_tokens=self.count_prompt_tokens(messages),
                completion_tokens=len(words),
            )

    concurrency, queue_size = (int(x) for x in os.environ[FAKE_ENV].split(","))
    config = ServerConfig(
        index_dir=None,
        model_name="instant",
        concurrency=concurrency,
        queue_size=queue_size,
        metrics_dir=metrics_dir(),
    )
    return create_app(ServerState(lambda: Pipelines(base=Pipeline(InstantGenerator())), config))


def serve_fake(port: int, concurrency: int, queue_size: int, workers: int) -> None:
    import logging

    import uvicorn

    from serve.replicas import run_workers

    os.environ[FAKE_ENV] = f"{concurrency},{queue_size}"
    logging.basicConfig(level=logging.WARNING)
    if workers > 1:
        # This file's folder is on sys.path (it was run as a script), so workers import it.
        run_workers(
            f"{Path(__file__).stem}:fake_app",
            host="127.0.0.1",
            port=port,
            workers=workers,
            log_level="warning",
        )
        return
    uvicorn.run(fake_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False)


def cpu_snapshot() -> list[str]:
    """The busiest processes right now (other work on the machine skews the figures)."""
    try:
        out = subprocess.run(["top", "-bn1"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return out.splitlines()[:15]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--fake", action="store_true", help="start a server with an instant fake generator"
    )
    target.add_argument("--index", type=Path, help="start `rag serve` over this index")
    target.add_argument("--url", help="use a running server")
    target.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--model", default="smollm2-135m", help="generator for --index [smollm2-135m]"
    )
    parser.add_argument(
        "--variant",
        default=None,
        help="the request's model field [closed-book with --fake, else rag]",
    )
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--requests", type=int, default=None, help="total requests [20 per client]")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--qa", type=Path, help="QA JSONL whose questions to ask [corpora/sample]")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="server generation slots [8 fake, 1 real]"
    )
    parser.add_argument("--queue-size", type=int, default=64)
    parser.add_argument("--api-key", default=os.environ.get("RAG_BENCH_KEY"))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--workers",
        default="1",
        help="server worker processes; a list (1,2) runs the load once per count [1]",
    )
    parser.add_argument("--quiet-server", action="store_true", help="hide the server's log")
    args = parser.parse_args(argv)
    if args.concurrency is None:
        args.concurrency = 8 if (args.fake or args.serve_fake) else 1
    try:
        worker_counts = [int(n) for n in args.workers.split(",")]
    except ValueError:
        parser.error(f"--workers takes counts like 2 or 1,2, got {args.workers!r}")
    if args.serve_fake:
        serve_fake(args.port, args.concurrency, max(args.queue_size, 256), worker_counts[0])
        return 0
    if not 1 <= args.clients <= 256:
        parser.error("--clients must be between 1 and 256")
    if args.url and len(worker_counts) > 1:
        parser.error("--workers with several counts starts its own servers: drop --url")
    failed = 0
    throughput: dict[int, float] = {}
    for workers in worker_counts:
        failed |= run_load(args, workers, throughput)
    if len(throughput) > 1:
        base = throughput[worker_counts[0]]
        print("== answers/s by worker count (ratio to the first)")
        for workers, rate in throughput.items():
            print(f"workers {workers:<3} {rate:8.1f} answers/s   x{rate / base:.2f}")
    return failed


def run_load(args: argparse.Namespace, workers: int, throughput: dict[int, float]) -> int:
    """One load run against a server with ``workers`` workers (started here unless --url)."""
    requests = args.requests or 20 * args.clients
    variant = args.variant or ("closed-book" if args.fake else "rag")
    process = None
    if args.url:
        url = args.url.rstrip("/")
    else:
        port = args.port or free_port()
        url = f"http://127.0.0.1:{port}"
        process = start_server(args, port, workers)
    try:
        if process is not None:
            wait_ready(url, process, timeout=60 if args.fake else 600, workers=workers)
        label = "fake generator" if args.fake else (args.model if args.index else url)
        tally = asyncio.run(
            load(
                url,
                clients=args.clients,
                requests=requests,
                model=variant,
                api_key=args.api_key,
                max_tokens=args.max_tokens,
                questions=read_questions(args.qa),
            )
        )
        ok = sum(1 for r in tally.results if r.status == 200 and r.error is None)
        throughput[workers] = ok / tally.wall_s
        return report(tally, clients=args.clients, label=f"{label}, {workers} worker(s)")
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    sys.exit(main())
