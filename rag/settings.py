"""Settings read once, at the edge (the CLI and the server), from `RAG_*` variables and `.env`.

Library code never reads the environment: it takes these values as explicit arguments.
"""

from __future__ import annotations

from pathlib import Path

from platformdirs import user_cache_dir
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore")

    #: Where converted models, fetched corpora and downloads are cached.
    cache_dir: Path = Path(user_cache_dir("rag"))
    #: The index folder used when a command is given no ``--index``.
    index: Path = Path("index")
    #: The generator used when a command is given no ``--model``.
    model: str = "qwen2.5-0.5b"
    #: The embedder new indexes are built with.
    embedder: str = "minilm"
    #: ``cuda``, ``cpu`` or empty for "CUDA when present".
    device: str = ""
    #: The local generation engine: ``auto`` (transformers on CUDA, CTranslate2 int8 on the
    #: CPU), ``ctranslate2``, ``llama.cpp`` or ``transformers``.
    engine: str = "auto"


def load_settings() -> Settings:
    return Settings()
