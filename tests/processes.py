"""Servers the tests start: a process until its URL answers, then stopped; a handler on a thread.

process = subprocess.Popen(..., start_new_session=True)
try:
    wait_until_ready(f"{url}/readyz", process, timeout_s=600, log=log_path)
    ...
finally:
    stop(process)
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx


def wait_until_ready(
    url: str, process: subprocess.Popen[bytes], timeout_s: float, log: Path | None = None
) -> None:
    """Until ``GET url`` answers 200; fails with the log's tail if the process exits first."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            tail = log.read_text()[-4000:] if log is not None and log.exists() else ""
            raise AssertionError(f"{process.args!r} exited with {process.returncode}:\n{tail}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} was not ready after {timeout_s:.0f} s")
        time.sleep(0.3)


def stop(process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s`` (to its whole process group when it leads one:
    a server's workers go with it)."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        process.wait()


@contextmanager
def handler_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """``handler`` serving on a loopback port in a thread; yields its base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
