"""The parse cache: an unchanged model is not parsed again, a changed one is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_build import BASE, PROFILE, write

import elt.graph.parsecache
from elt.graph.discover import discover_graph
from elt.graph.parsecache import CACHE_FILE
from elt.project.config import load_project


def _refuse(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("parsed although the cache holds this SQL")


def test_cache_used_while_unchanged_and_invalidated_by_an_edit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, {**BASE, "profiles.yml": PROFILE})
    first = discover_graph(load_project(tmp_path))
    cache = json.loads((tmp_path / "target" / CACHE_FILE).read_text())
    sql_files = {p.read_text() for p in (tmp_path / "models").rglob("*.sql")}
    assert len(cache["entries"]) == len(sql_files) > 1
    monkeypatch.setattr(elt.graph.parsecache, "parse_select", _refuse)
    again = discover_graph(load_project(tmp_path))  # every SQL text is in the cache
    assert {n: again.nodes[n].depends_on for n in again.nodes} == \
        {n: first.nodes[n].depends_on for n in first.nodes}
    write(tmp_path, {"models/staging/stg_people.sql":
                     "SELECT id, name, city_id FROM raw.people JOIN raw.cities USING (id)\n"})
    with pytest.raises(AssertionError, match="parsed although"):
        discover_graph(load_project(tmp_path))  # the edited text is not cached: parsed
    monkeypatch.undo()
    edited = discover_graph(load_project(tmp_path))
    assert edited.nodes["stg_people"].depends_on == ["raw.cities", "raw.people"]
    monkeypatch.setattr(elt.graph.parsecache, "parse_select", _refuse)
    assert discover_graph(load_project(tmp_path)).nodes["stg_people"].depends_on == [
        "raw.cities", "raw.people"]


def test_a_syntax_error_is_never_cached(tmp_path: Path) -> None:
    write(tmp_path, {**BASE, "profiles.yml": PROFILE,
                     "models/broken.sql": "SELECT FROM WHERE\n"})
    for _ in range(2):
        with pytest.raises(Exception, match="broken"):
            discover_graph(load_project(tmp_path))
