"""Fixtures shared by the deployment tests."""

from __future__ import annotations

import pytest

from tests.deploy.support import KUSTOMIZATIONS, Doc, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[Doc]]:
    """Every kustomization (base, dev, prod) rendered once per session."""
    return {name: render(path) for name, path in KUSTOMIZATIONS.items()}
