"""Where a remote model runs: an OpenAI-compatible server, and what the client knows of it.

Light (no HTTP client imported), so the command line and the settings can build one.
"""

from __future__ import annotations

from dataclasses import dataclass

from rag.errors import ConfigError

#: Why the LoRA variants do not run against a server: the adapter is loaded into a local model.
REMOTE_ADAPTER = (
    "A LoRA adapter cannot be applied to a remote model: load it in the serving engine (vLLM: "
    "--enable-lora --lora-modules NAME=DIR) and pass --model NAME, or drop --base-url to run "
    "the model locally"
)


@dataclass(frozen=True)
class Remote:
    """An OpenAI-compatible server (vLLM, TGI, llama.cpp's server, another `rag serve`).

    ``context_window`` is what its model attends to, prompt and answer together; None asks the
    server (vLLM and llama.cpp's server say). ``tokenizer`` names a registry model whose local
    tokenizer counts prompts when the server has no tokenize endpoint.
    """

    base_url: str
    api_key: str | None = None
    context_window: int | None = None
    tokenizer: str | None = None

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"base_url must start with http:// or https://, got {self.base_url!r} "
                "(e.g. http://localhost:8000/v1)"
            )
        if self.context_window is not None and self.context_window < 16:
            raise ConfigError(f"context_window must be >= 16, got {self.context_window}")
