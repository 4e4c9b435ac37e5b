"""Test-wide set-up, done before any test imports torch.

- Passive OpenMP waiting (see rag/cli.py): busy-waiting threads stall decoding on 2 cores.
- ``RAG_TEST_CACHE``: where integration tests find converted models. It defaults to the user
  cache that `make test` (via `rag models pull`) fills, so each model converts once per machine
  rather than once per test module.
"""

from __future__ import annotations

import os

from rag.settings import Settings

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("RAG_TEST_CACHE", str(Settings().cache_dir))
