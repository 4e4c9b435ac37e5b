"""Settings read once, at the edge (the CLI and the server), from `RAG_*` variables and `.env`,
and the answering defaults an evaluation recommends (`settings.json`).

Library code never reads the environment or these files: it takes their values as explicit
arguments.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from platformdirs import user_cache_dir
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag.defaults import DEFAULT_K, DEFAULT_SHOTS
from rag.errors import ConfigError

if TYPE_CHECKING:
    from rag.generate.remote import Remote

#: The recommended settings `rag eval` writes (``OUT/settings.json``); in an index folder, that
#: index's answering defaults.
SETTINGS_FILE = "settings.json"


def default_cache_dir() -> Path:
    """The per-user cache (converted models, fetched corpora) when nothing else is configured."""
    return Path(user_cache_dir("rag"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    #: Where converted models, fetched corpora and downloads are cached.
    cache_dir: Path = default_cache_dir()
    #: The index folder used when a command is given no ``--index``.
    index: Path = Path("index")
    #: The generator used when a command is given no ``--model``: the best reader whose answers
    #: take a median under 5 s on two CPU cores (the README's model table has the figures).
    model: str = "qwen2.5-1.5b"
    #: The embedder new indexes are built with.
    embedder: str = "minilm"
    #: ``cuda``, ``cpu`` or empty for "CUDA when present".
    device: str = ""
    #: What one ingested file may cost (`rag ingest` and uploads): its size in bytes, the
    #: characters of text it yields, and the seconds it may take to read.
    max_file_bytes: int = Field(default=50_000_000, ge=1)
    max_file_chars: int = Field(default=5_000_000, ge=1)
    max_file_seconds: float = Field(default=60.0, gt=0)
    #: The local generation engine: ``auto`` (transformers on CUDA, OpenVINO on the CPU),
    #: ``openvino``, ``ctranslate2``, ``llama.cpp`` or ``transformers``.
    engine: str = "auto"
    #: An OpenAI-compatible server to generate with instead of a local model.
    base_url: str | None = None
    #: The key the OpenAI-compatible backend at ``base_url`` expects (not a key to our server).
    backend_api_key: str | None = None
    #: The remote model's context window, when its server does not say.
    context_window: int | None = Field(default=None, ge=16)
    #: A registry model whose tokenizer counts prompts when the server cannot.
    tokenizer: str | None = None

    def remote(
        self,
        base_url: str | None = None,
        context_window: int | None = None,
        tokenizer: str | None = None,
    ) -> Remote | None:
        """The server these settings generate with (command-line values first); None: local."""
        url = base_url or self.base_url
        if not url:
            return None
        from rag.generate.remote import Remote

        return Remote(
            url,
            self.backend_api_key,
            context_window or self.context_window,
            tokenizer or self.tokenizer,
        )


def load_settings() -> Settings:
    return Settings()


class AnswerDefaults(BaseModel):
    """How to answer when a request does not say: passages, demonstrations, search mode."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    k: int = Field(default=DEFAULT_K, ge=1, le=100)
    shots: int = Field(default=DEFAULT_SHOTS, ge=0, le=20)
    mode: Literal["hybrid", "dense", "keyword"] = "hybrid"
    #: The file the values came from (None: the built-in defaults).
    source: Path | None = Field(default=None, exclude=True)


def answer_defaults(settings_file: Path | None, index: Path | None) -> AnswerDefaults:
    """The defaults in ``settings_file``; without one, in ``index``'s ``settings.json`` (what
    `rag eval --apply-settings` stored there); else the built-in ones."""
    path = settings_file
    if path is None and index is not None and (Path(index) / SETTINGS_FILE).is_file():
        path = Path(index) / SETTINGS_FILE
    if path is None:
        return AnswerDefaults()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return AnswerDefaults.model_validate({**data, "source": path})
    except OSError as error:
        raise ConfigError(f"cannot read the settings file {path}: {error.strerror}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"{path} is not JSON ({error.msg}): pass the settings.json `rag eval` wrote"
        ) from None
    except ValidationError as error:
        first = error.errors()[0]
        detail = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        raise ConfigError(
            f"{path} is not a settings file ({detail}): pass the settings.json `rag eval` "
            "wrote, or delete it"
        ) from None
