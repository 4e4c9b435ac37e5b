"""llama.cpp's OpenAI-compatible server (`llama-cpp-python[server]`) on the smollm2 GGUF, as a
real third-party backend for the remote-generation tests.

    with llama_cpp_server(n_ctx=2048) as url: ...   # url ends in /v1

Run as a script, this file starts `python -m llama_cpp.server` with its arguments, after one
change to how the model loads: where the library was built with AMX kernels, the weights are not
repacked into AMX buffers (``use_extra_bufts = False``). On the VMs these tests run on llama.cpp's
AMX path dies with SIGSEGV on the first completion (llama.cpp issue 20824), though AMX works there
for torch.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
    # Here, not at the top: run as a script, this file cannot import the tests package.
    from tests.processes import stop, wait_until_ready

    port = _free_port()
    command = [sys.executable, __file__, "--model", str(smollm2_gguf()), "--model_alias", alias]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx)]
    command += ["--n_threads", "1", "--verbose", "false"]
    with tempfile.TemporaryDirectory(prefix="llama-cpp-server-") as folder:
        log_path = Path(folder) / "server.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=log, start_new_session=True)
            url = f"http://127.0.0.1:{port}/v1"
            try:
                wait_until_ready(f"{url}/models", process, timeout_s=300, log=log_path)
                yield url
            finally:
                stop(process, timeout_s=20)


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
