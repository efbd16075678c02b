"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sandbox_client import HTTP

from elt.sandbox.server import Sandbox

pytest_plugins = ["seed_helpers"]  # the seed-loading tests' `root` and `con` fixtures


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """An in-memory sandbox on a free loopback port, stopped after the test."""
    sb = Sandbox(None).start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[httpx.Client]:
    HTTP.base_url = httpx.URL(sandbox.url)
    yield HTTP
