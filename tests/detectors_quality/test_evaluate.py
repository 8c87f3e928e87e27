"""``pynomaly evaluate``: one output row per input row, scores in [0, 1], NAB report."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from detectors import evaluate
from tests.detectors_quality.conftest import SMALL_FILES


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_one_row_per_input_row_with_scores_in_unit_interval(
    small_nab: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, labels = small_nab
    out = tmp_path / "out"
    assert evaluate.main([str(data), "--out", str(out), "--labels", str(labels),
                          "--jobs", "2"]) == 0
    for rel in SMALL_FILES:
        src, res = _rows(data / rel), _rows(out / rel)
        assert len(res) == len(src)
        assert [r["timestamp"] for r in res] == [r["timestamp"] for r in src]
        scores = [float(r["anomaly_score"]) for r in res]
        assert all(0.0 <= s <= 1.0 for s in scores)
        assert max(scores) > 0.99  # each of these files has a clear anomaly
    printed = capsys.readouterr()
    for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
        assert profile in printed.out
    assert "rows/s" in printed.err  # progress on stderr


def test_bad_values_keep_their_row_and_score_zero(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    lines = ["timestamp,value"]
    for i in range(300):
        value = "oops" if i == 150 else ("nan" if i == 151 else ("" if i == 152 else str(i % 5)))
        lines.append(f"2024-01-01 00:{i // 60:02d}:{i % 60:02d},{value}")
    (data / "s.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    assert evaluate.main([str(data), "--out", str(out), "--jobs", "1"]) == 0
    res = _rows(out / "s.csv")
    assert len(res) == 300
    assert [float(res[i]["anomaly_score"]) for i in (150, 151, 152)] == [0.0, 0.0, 0.0]
    assert all(math.isfinite(float(r["anomaly_score"])) for r in res)


def test_config_file_is_the_workers_settings_file(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('detector = "zscore"\nwarmup_events = 5\n')
    factory = evaluate.load_factory(good, None)
    assert factory.default.detector == "zscore" and factory.default.warmup == 5
    assert evaluate.load_factory(good, "rarity_likelihood").default.detector == "rarity_likelihood"
    assert evaluate.load_factory(None, None).default.detector == evaluate.DEFAULT_DETECTOR
    bad = tmp_path / "bad.toml"
    bad.write_text("detecter = 'zscore'\n")
    with pytest.raises(SystemExit, match="detecter"):
        evaluate.load_factory(bad, None)


def test_missing_data_dir_is_an_error(tmp_path: Path) -> None:
    assert evaluate.main([str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2


def test_plots_one_png_per_series(small_nab: tuple[Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    data, labels = small_nab
    plots = tmp_path / "plots"
    assert evaluate.main([str(data), "--out", str(tmp_path / "o"), "--labels", str(labels),
                          "--plots", str(plots), "--jobs", "1"]) == 0
    pngs = sorted(p.relative_to(plots).as_posix() for p in plots.rglob("*.png"))
    assert pngs == sorted(str(Path(r).with_suffix(".png").as_posix()) for r in SMALL_FILES)


def test_labels_match_when_data_dir_is_a_category_folder(
    small_nab: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, labels = small_nab
    assert evaluate.main([str(data / "realTraffic"), "--out", str(tmp_path / "o"),
                          "--labels", str(labels), "--jobs", "1"]) == 0
    assert "standard" in capsys.readouterr().out
    assert evaluate.main([str(data), "--out", str(tmp_path / "o"),
                          "--labels", str(tmp_path / "missing.json")]) == 2
