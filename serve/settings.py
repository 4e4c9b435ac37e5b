"""The server's settings: `RAG_*` environment variables and `.env`, read once at start-up.

They extend the shared `rag.settings.Settings` (cache folder, index, model, device) with what only
the server needs: where to listen, who may call it, and the limits that keep one client from
starving the others. `rag serve` reads them once and overrides them with its own options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from rag.settings import Settings


class ServeSettings(Settings):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    #: Bearer keys; empty means no authentication. ``RAG_API_KEYS=k1,k2``.
    api_keys: Annotated[tuple[str, ...], NoDecode] = ()
    #: A LoRA adapter folder: adds the ``lora`` and ``lora-rag`` variants.
    adapter: Path | None = None
    #: A JSONL example bank to draw demonstrations from instead of the packaged one.
    examples: Path | None = None
    #: Worker processes over the one index folder, each with its own model (`--workers`).
    workers: int = Field(default=1, ge=1, le=64)
    #: Answering defaults (k, shots, mode) from a `rag eval` settings.json; without one, the
    #: index folder's settings.json when it has one.
    settings_file: Path | None = None
    #: Generations running at once; None: as many as the engine runs together
    #: (``rag.generate.engine_capacity``).
    concurrency: int | None = Field(default=None, ge=1, le=256)
    #: Requests allowed to wait for a generation slot; one more gets 429.
    queue_size: int = Field(default=32, ge=0, le=10_000)
    #: Largest JSON request body, in bytes (413 beyond).
    max_body_bytes: int = Field(default=1_000_000, ge=1_000)
    #: Most chat messages in one request (400 beyond).
    max_messages: int = Field(default=64, ge=1)
    #: Longest single message, in characters (400 beyond).
    max_message_chars: int = Field(default=16_000, ge=1)
    #: Largest ``max_tokens`` a client may ask for.
    max_new_tokens: int = Field(default=1024, ge=1)
    #: Largest upload request (all files together), in bytes (413 beyond).
    max_upload_bytes: int = Field(default=20_000_000, ge=1_000)
    #: Most prompt tokens one request may cost (400 beyond, before it waits for a slot).
    max_prompt_tokens: int = Field(default=4096, ge=64)
    #: Seconds a client has to send a request's headers (then 408 and the connection closes).
    header_timeout: float = Field(default=10.0, gt=0, le=3600)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        """Accept ``k1,k2`` from the environment as well as a list from code."""
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list | tuple):
            return tuple(str(key).strip() for key in value if str(key).strip())
        return value


def load_serve_settings(**overrides: Any) -> ServeSettings:
    """Read the environment and `.env` once; options given on the command line (not None) win."""
    given = {key: value for key, value in overrides.items() if value not in (None, (), [])}
    return ServeSettings(**given)
