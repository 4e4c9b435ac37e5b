"""`rag` with the test stand-ins behind two names: ``--embedder fake`` (`FakeEmbedder`) and
``--model scripted`` (a `ScriptedGenerator` that cites its first passage).

For the tests that must run the real command in its own process, many times over (to kill it at
random moments), where loading MiniLM and a language model at every start would cost minutes:
everything else (loaders, the bounded reader, chunking, the index writer, the server, uvicorn) is
the real thing. ``python -m tests.fake_rag ingest ...`` from the repository root.
"""

from __future__ import annotations

from typing import Any

import rag.embed
import rag.generate
from rag.cli import main
from tests.fakes import FakeEmbedder, ScriptedGenerator

_load_embedder = rag.embed.load_embedder
_load_generator = rag.generate.load_generator


def load_embedder(name_or_path: str = "minilm", device: str | None = None, **kwargs: Any) -> Any:
    if name_or_path == "fake":
        return FakeEmbedder()
    return _load_embedder(name_or_path, device, **kwargs)


def load_generator(name_or_path: str, **kwargs: Any) -> Any:
    if name_or_path == "scripted":
        from tests.serve.conftest import cite_first  # fastapi and friends: only for `serve`

        return ScriptedGenerator(script=cite_first)
    return _load_generator(name_or_path, **kwargs)


rag.embed.load_embedder = load_embedder
rag.generate.load_generator = load_generator

if __name__ == "__main__":
    main()
