"""Shared pytest fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

# the shared check helpers' bare asserts say what differed when they fail (pytest rewrites
# only test modules and conftest unless told)
pytest.register_assert_rewrite("helpers", "sandbox_client", "seed_helpers")

from sandbox_client import HTTP  # noqa: E402 - after the rewrite registration

from elt.sandbox.server import Sandbox  # noqa: E402

pytest_plugins = ["seed_helpers"]  # the seed-loading tests' `root` and `con` fixtures


@pytest.fixture(scope="module")
def spark_session() -> Iterator[None]:
    """One Spark session per test module (its Contexts get it from getOrCreate), stopped
    after the module. Only modules that skip without pyspark and Java ask for it."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    yield
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()


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
