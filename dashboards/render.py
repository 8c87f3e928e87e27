"""Render every ``dashboards/*.dashboard.py`` to the JSON file beside it.

``python -m dashboards.render`` writes ``dashboards/<name>.json``; ``--check`` writes
nothing and exits 1 naming each JSON that is missing or differs from its source.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import sys
from pathlib import Path

from grafanalib._gen import write_dashboard

HERE = Path(__file__).resolve().parent
SUFFIX = ".dashboard.py"


def sources(directory: Path = HERE) -> list[Path]:
    return sorted(directory.glob("*" + SUFFIX))


def output_path(source: Path) -> Path:
    return source.with_name(source.name[: -len(SUFFIX)] + ".json")


def render(source: Path) -> str:
    """The JSON text of the ``dashboard`` object that ``source`` defines."""
    spec = importlib.util.spec_from_file_location(f"_dashboard_{source.stem}", source)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {source}; is it a Python file?")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    board = getattr(module, "dashboard", None)
    if board is None:
        raise RuntimeError(f"{source} defines no `dashboard` object; assign one at module level")
    out = io.StringIO()
    write_dashboard(board, out)
    return out.getvalue()


def stale(directory: Path = HERE) -> list[Path]:
    """Rendered JSON files that are missing or differ from their sources."""
    bad = []
    for src in sources(directory):
        dst = output_path(src)
        if not dst.exists() or dst.read_text() != render(src):
            bad.append(dst)
    return bad


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.render", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if any JSON is stale")
    args = parser.parse_args(argv)
    if args.check:
        bad = stale()
        for path in bad:
            print(f"stale: {path.relative_to(HERE.parent)}; run `make dashboards`", file=sys.stderr)
        return 1 if bad else 0
    for src in sources():
        dst = output_path(src)
        dst.write_text(render(src))
        print(f"wrote {dst.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
