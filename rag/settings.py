"""Settings read once, at the edge (the CLI and the server), from `RAG_*` variables and `.env`.

Library code never reads the environment: it takes these values as explicit arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from platformdirs import user_cache_dir
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from rag.generate.remote import Remote


def default_cache_dir() -> Path:
    """The per-user cache (converted models, fetched corpora) when nothing else is configured."""
    return Path(user_cache_dir("rag"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    #: Where converted models, fetched corpora and downloads are cached.
    cache_dir: Path = default_cache_dir()
    #: The index folder used when a command is given no ``--index``.
    index: Path = Path("index")
    #: The generator used when a command is given no ``--model``.
    model: str = "qwen2.5-0.5b"
    #: The embedder new indexes are built with.
    embedder: str = "minilm"
    #: ``cuda``, ``cpu`` or empty for "CUDA when present".
    device: str = ""
    #: What one ingested file may cost (`rag ingest` and uploads): its size in bytes, the
    #: characters of text it yields, and the seconds it may take to read.
    max_file_bytes: int = Field(default=50_000_000, ge=1)
    max_file_chars: int = Field(default=5_000_000, ge=1)
    max_file_seconds: float = Field(default=60.0, gt=0)
    #: The local generation engine: ``auto`` (transformers on CUDA, CTranslate2 int8 on the
    #: CPU), ``ctranslate2``, ``llama.cpp`` or ``transformers``.
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
