"""Reading files in a worker process, so that one file's time and memory are bounded.

A parser stuck inside C (a PDF content stream, a zip member, a pathological tree) cannot be
interrupted from a thread, but a process can be killed. `BoundedReader` starts one worker process
(on the first file) that reads files one at a time with `load_file`, under an address-space limit;
the caller waits at most `FileLimits.seconds` for each file, kills the worker when that budget
runs out (or when ``stop`` is set: the client went away), and starts a fresh worker for the next
file. The worker dies with its parent, so a killed `rag ingest` leaves no reader behind.

Documents come back as JSON, not pickle: the worker handles hostile bytes, and what it sends is
data, never code.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ingest.file_limits import FileLimits
from ingest.loaders import SourceFile, load_file
from rag.errors import Cancelled, InputError
from rag.types import Document

#: How often a wait for the worker looks at ``stop``.
_POLL_SECONDS = 0.05
_PR_SET_PDEATHSIG = 1
#: Where the `ingest` package lives, so the worker imports the same code as its parent.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])


class BoundedReader:
    """``read(file)`` the documents of one file within ``limits``; InputError says why not.

    Use as a context manager (or call ``close``) so the worker process ends with the batch.
    """

    def __init__(
        self,
        limits: FileLimits = FileLimits(),
        *,
        json_field: str = "text",
        stop: threading.Event | None = None,
    ) -> None:
        self.limits = limits
        self.json_field = json_field
        self.stop = stop
        self._worker: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None

    def __enter__(self) -> BoundedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, file: SourceFile) -> list[Document]:
        """The file's documents; InputError when it is unreadable or passes a bound, Cancelled
        when ``stop`` is set meanwhile."""
        self._check_stop()
        conn = self._connection()
        request = {
            "path": str(file.path),
            "doc_id": file.doc_id,
            "json_field": self.json_field,
            "limits": asdict(self.limits),
        }
        conn.send_bytes(json.dumps(request).encode())
        deadline = time.monotonic() + self.limits.seconds
        while not conn.poll(_POLL_SECONDS):
            if self.stop is not None and self.stop.is_set():
                self._kill()
                self._check_stop()
            if time.monotonic() > deadline:
                self._kill()
                raise InputError(
                    f"took longer than {self.limits.seconds:g} s to read (the per-file time "
                    "budget; raise RAG_MAX_FILE_SECONDS for files this slow)"
                )
        try:
            reply = json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            code = self._kill()
            how = f"signal {-code}" if code < 0 else f"exit code {code}"
            raise InputError(f"reading it crashed the reader process ({how})") from None
        if "error" in reply:
            raise InputError(reply["error"])
        return [Document(**fields) for fields in reply["documents"]]

    def close(self) -> None:
        """Stop the worker (it also exits on its own when its pipe closes)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._worker is not None:
            try:
                self._worker.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self._worker.kill()
                self._worker.wait()
            self._worker = None

    def _check_stop(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise Cancelled("ingestion stopped: the request that started it went away")

    def _connection(self) -> Connection:
        if self._conn is None:
            ours, theirs = Pipe()  # a socket pair: one duplex connection each
            env = dict(os.environ)
            paths = [_PACKAGE_ROOT, env.get("PYTHONPATH", "")]
            env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
            argv = [sys.executable, "-m", "ingest.bounded", str(theirs.fileno())]
            argv += [str(self.limits.memory_bytes), str(os.getpid())]
            try:
                self._worker = subprocess.Popen(
                    argv,
                    pass_fds=(theirs.fileno(),),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    env=env,
                )
            finally:
                theirs.close()
            self._conn = ours
        return self._conn

    def _kill(self) -> int:
        """Kill the worker now; the next file gets a fresh one. Returns its exit status."""
        code = 0
        if self._worker is not None:
            self._worker.kill()
            code = self._worker.wait()
            self._worker = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        return code


# -- the worker process ----------------------------------------------------------------------------


def _serve(fd: int, memory_bytes: int, parent: int) -> None:
    """Read files until the parent closes the connection (or dies)."""
    import resource

    _die_with(parent)
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    conn = Connection(fd)
    while True:
        try:
            request = json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        file = SourceFile(path=Path(request["path"]), doc_id=request["doc_id"])
        limits = FileLimits(**request["limits"])
        try:
            documents = load_file(file, json_field=request["json_field"], limits=limits)
            reply: dict[str, Any] = {"documents": [_fields(d) for d in documents]}
        except InputError as error:
            reply = {"error": str(error)}
        except MemoryError:
            reply = {"error": f"needs more than {memory_bytes >> 20} MiB of memory to read"}
        try:
            conn.send_bytes(json.dumps(reply, ensure_ascii=False).encode())
        except OSError:  # the parent died (its pipe closes before its death signal arrives)
            return


def _fields(document: Document) -> dict[str, Any]:
    return {
        "id": document.id,
        "source": document.source,
        "title": document.title,
        "text": document.text,
        "metadata": document.metadata,
    }


def _die_with(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies (elsewhere: the pipe's EOF)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os._exit(1)


if __name__ == "__main__":
    _serve(*(int(arg) for arg in sys.argv[1:4]))
