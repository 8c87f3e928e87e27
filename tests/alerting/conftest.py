"""Helpers: scored records as streams/codec.py ``scored_dict`` writes them."""

from __future__ import annotations

import sys
from pathlib import Path

# tests/ is not a package; make `tests.support` importable however pytest is started.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
