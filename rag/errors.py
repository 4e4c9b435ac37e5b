"""One exception family. Every message says what went wrong and what to do next.

The CLI prints ``str(error)`` without a traceback and exits with ``error.exit_code``; the server
maps ``error.http_status`` to an OpenAI-style error body. Library code raises these and nothing
else for a user's mistake.
"""

from __future__ import annotations


class RagError(Exception):
    """Base class: a problem the user can fix, with a message that says how."""

    exit_code = 1
    http_status = 400
    code = "invalid_request"


class ConfigError(RagError):
    """A bad argument or setting (an unknown option value, a missing file)."""


class UnknownModel(RagError):
    code = "model_not_found"
    http_status = 404


class ModelNotInstalled(RagError):
    """A registry model whose carriers are not installed; the message names `rag models pull`."""

    code = "model_not_installed"
    http_status = 503


class ChecksumMismatch(RagError):
    code = "checksum_mismatch"
    http_status = 500


class IndexNotFound(RagError):
    code = "index_not_found"
    http_status = 404


class IndexLocked(RagError):
    """Another process is writing to the index."""

    code = "index_locked"
    http_status = 409


class IndexCorrupt(RagError):
    code = "index_corrupt"
    http_status = 500


class EmbedderMismatch(RagError):
    """The index was built with another embedding model; the message says how to rebuild."""

    code = "embedder_mismatch"
    http_status = 409


class InputError(RagError):
    """A file or question that cannot be used (unreadable, empty, too large, unsupported)."""


class PromptTooLong(InputError):
    """A question (the user's own text) too long for the prompt budget: OpenAI's code for it."""

    code = "context_length_exceeded"


class PromptError(RagError):
    """A template that does not render (a missing variable, an unknown template)."""

    http_status = 500
    code = "prompt_error"


class GenerationError(RagError):
    """The generator failed (a remote backend that is down, a model that cannot run)."""

    http_status = 502
    code = "generation_error"


class CorpusError(RagError):
    code = "corpus_error"


class ClusterError(RagError):
    """A Ray cluster that cannot be joined, or that lost every worker of a run."""

    code = "cluster_error"
    http_status = 503


class Cancelled(RagError):
    """Work stopped on purpose: the client whose request started it went away."""

    code = "cancelled"
    http_status = 499
