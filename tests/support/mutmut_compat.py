"""A pytest plugin loaded only by `make mutation` (pyproject's [tool.mutmut]).

mutmut 3.7 records which tests reach each function through ``item._nodeid``; the items
pytest-asyncio substitutes for ``async def`` tests lack that attribute under pytest 9, so
the stats run fails. Give them the node id they already have.
"""

from __future__ import annotations

from typing import Any

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[Any]) -> None:
    for item in items:
        if not hasattr(item, "_nodeid"):
            item._nodeid = item.nodeid
