"""Settings read once, at the edge (the CLI and the server), from `RAG_*` variables and `.env`.

Library code never reads the environment: it takes these values as explicit arguments.
"""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_cache_dir
from pydantic_settings import BaseSettings, SettingsConfigDict


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


def load_settings() -> Settings:
    return Settings()
