"""open_endpoints: configs by name, and the embedded sandbox only when an endpoint needs it."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from elt.context import start_sandbox
from elt.core.console import Console
from elt.core.errors import PublishError
from elt.http import endpoints
from elt.http.endpoints import open_endpoints
from elt.project.config import Project, load_project

REMOTE = {"url": "https://flowkit.example/v1", "heartbeat": "/heartbeat"}


def project(tmp_path: Path, eps: dict[str, Any]) -> Project:
    output = {"type": "duckdb", "path": "target/elt.duckdb", "endpoints": eps}
    (tmp_path / "profiles.yml").write_text(yaml.safe_dump(
        {"t": {"target": "dev", "outputs": {"dev": output}}}))
    return load_project(tmp_path)


def up(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_unknown_endpoint_lists_the_known_ones(tmp_path: Path) -> None:
    proj = project(tmp_path, {"flowkit": REMOTE, "uois": {"sandbox": "uois"}})
    with pytest.raises(PublishError, match=r"unknown endpoint 'nope'; target dev defines: "
                                           r"flowkit, uois"):
        with open_endpoints(proj, ["nope"], Console(io.StringIO())):
            pass


def test_endpoint_must_be_a_mapping(tmp_path: Path) -> None:
    proj = project(tmp_path, {"flowkit": "https://x"})
    with pytest.raises(PublishError, match="endpoint flowkit: endpoint must be a mapping"):
        with open_endpoints(proj, ["flowkit"], Console(io.StringIO())):
            pass


def test_no_sandbox_unless_needed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: Any, **__: Any) -> None:
        raise AssertionError("the sandbox must not start")

    proj = project(tmp_path, {"flowkit": REMOTE, "uois": {"sandbox": "uois"}})
    out = io.StringIO()
    with open_endpoints(proj, ["flowkit"], Console(out), refuse) as eps:
        assert eps == {"flowkit": REMOTE}
    assert out.getvalue() == ""
    assert not (tmp_path / "target" / "sandbox.duckdb").exists()


def test_one_sandbox_for_all_and_stopped_after(tmp_path: Path) -> None:
    proj = project(tmp_path, {"flowkit": {"sandbox": "flowkit", "timeout": 5},
                              "uois": {"sandbox": "uois"}, "other": REMOTE})
    out = io.StringIO()
    with open_endpoints(proj, ["flowkit", "uois", "other"], Console(out), start_sandbox) as eps:
        fk, uo = eps["flowkit"], eps["uois"]
        assert fk["url"] == uo["url"] + "/v1" and fk["timeout"] == 5
        assert fk["auth"]["type"] == "oauth2_client_credentials"
        assert uo["auth"]["type"] == "login3" and uo["graphql_path"] == "/api/gql"
        assert eps["other"] == REMOTE
        assert up(fk["url"] + "/heartbeat")
    assert not up(fk["url"] + "/heartbeat")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("sandbox started at http://127.0.0.1:")
    assert lines[1].endswith("stopped")
    assert (tmp_path / "target" / "sandbox.duckdb").exists()


def test_nested_users_share_the_sandbox(tmp_path: Path) -> None:
    proj = project(tmp_path, {"uois": {"sandbox": "uois"}, "flowkit": {"sandbox": "flowkit"}})
    console = Console(io.StringIO())
    with open_endpoints(proj, ["uois"], console, start_sandbox) as outer:
        with open_endpoints(proj, ["flowkit"], console, start_sandbox) as inner:
            assert inner["flowkit"]["url"] == outer["uois"]["url"] + "/v1"
        assert up(inner["flowkit"]["url"] + "/heartbeat")  # still serving the outer user
    assert not up(inner["flowkit"]["url"] + "/heartbeat")
    assert endpoints._running == {}


def test_unknown_sandbox_kind_stops_the_sandbox(tmp_path: Path) -> None:
    proj = project(tmp_path, {"x": {"sandbox": "mystery"}})
    out = io.StringIO()
    with pytest.raises(PublishError, match=r"endpoint x: unknown sandbox endpoint 'mystery'"):
        with open_endpoints(proj, ["x"], Console(out), start_sandbox):
            pass
    assert endpoints._running == {} and out.getvalue().rstrip().endswith("stopped")
