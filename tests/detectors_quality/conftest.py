"""Shared helpers: where the NAB dev split and the reference scorer live (outside the repo)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
NAB_ROOT = SHARED / "nab"
REFERENCE = SHARED / "tools" / "nab_score.py"
# Small labelled files: a few thousand rows in all, so the suite stays fast.
SMALL_FILES = (
    "realTraffic/speed_7578.csv",
    "realAWSCloudwatch/iio_us-east-1_i-a2eb1cd9_NetworkIn.csv",
    "realKnownCause/rogue_agent_key_hold.csv",
)


@pytest.fixture(scope="session")
def nab_root() -> Path:
    if not (NAB_ROOT / "labels" / "combined_windows.json").exists():
        pytest.skip(f"NAB dev split not found at {NAB_ROOT}")
    return NAB_ROOT


@pytest.fixture(scope="session")
def reference() -> ModuleType:
    """The reference scorer /work/shared/tools/nab_score.py, imported by path."""
    if not REFERENCE.exists():
        pytest.skip(f"reference scorer not found at {REFERENCE}")
    pytest.importorskip("pandas")
    spec = importlib.util.spec_from_file_location("nab_score_reference", REFERENCE)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def small_nab(nab_root: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of a few NAB files and their labels: (data_dir, windows_json)."""
    windows = json.loads((nab_root / "labels" / "combined_windows.json").read_text())
    data = tmp_path / "data"
    for rel in SMALL_FILES:
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        (data / rel).write_bytes((nab_root / "data" / rel).read_bytes())
    labels = tmp_path / "labels" / "combined_windows.json"
    labels.parent.mkdir()
    labels.write_text(json.dumps({rel: windows[rel] for rel in SMALL_FILES}))
    return data, labels
