"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from elt.sandbox import Sandbox


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """An in-memory sandbox on a free loopback port, stopped after the test."""
    sb = Sandbox(None).start()
    try:
        yield sb
    finally:
        sb.stop()
