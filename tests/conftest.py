"""Test-wide set-up: passive OpenMP waiting (see rag/cli.py) before any test imports torch."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
