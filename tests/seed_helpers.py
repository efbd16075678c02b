"""Shared by the seed-loading tests: a temp project, its database, small readers."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from elt.core.errors import LoadError
from elt.load.loader import LoadOutcome, load_seed
from elt.project.config import load_project
from elt.project.seeds import SeedSpec, discover_seeds

Con = duckdb.DuckDBPyConnection


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "profiles.yml").write_text(
        "p: {target: dev, outputs: {dev: {type: duckdb, path: target/elt.duckdb}}}\n")
    (tmp_path / "seeds").mkdir()
    return tmp_path


@pytest.fixture
def con(root: Path) -> Iterator[Con]:
    (root / "target").mkdir()
    connection = duckdb.connect(str(root / "target" / "elt.duckdb"))
    yield connection
    connection.close()


def write(root: Path, rel: str, content: str | bytes) -> None:
    path = root / "seeds" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    data = content.encode() if isinstance(content, str) else content
    path.write_bytes(gzip.compress(data) if rel.endswith(".gz") else data)


def config(root: Path, text: str) -> None:
    (root / "seeds" / "seeds.yml").write_text(text, encoding="utf-8")


def spec(root: Path, name: str) -> SeedSpec:
    return {s.name: s for s in discover_seeds(load_project(root))}[name]


def load(con: Con, root: Path, name: str, **kw: Any) -> LoadOutcome:
    return load_seed(con, load_project(root), spec(root, name), **kw)


def rows(con: Con, sql: str, params: list[Any] | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def types(con: Con, table: str) -> dict[str, str]:
    return dict(rows(con, "SELECT column_name, data_type FROM duckdb_columns() WHERE "
                          "schema_name = 'raw' AND table_name = ?", [table]))


def ids_by_file(con: Con, table: str) -> dict[str, set[int]]:
    """Which load ids each source file's rows carry: shows what was (not) reloaded."""
    out: dict[str, set[int]] = {}
    for f, i in rows(con, f"SELECT DISTINCT _elt_source_file, _elt_load_id FROM raw.{table}"):
        out.setdefault(f, set()).add(i)
    return out


def state(con: Con, seed: str) -> tuple[list[tuple], list[tuple]]:
    """Fingerprints and events of a seed, to prove a failed load changed neither."""
    return (rows(con, "SELECT * FROM _elt.files WHERE seed = ? ORDER BY path", [seed]),
            rows(con, "SELECT * FROM _elt.loads WHERE seed = ? ORDER BY load_id, path", [seed]))


def load_error(con: Con, root: Path, name: str) -> str:
    """The LoadError's text, which the CLI prints as one line."""
    with pytest.raises(LoadError) as info:
        load(con, root, name)
    assert "\n" not in str(info.value), str(info.value)
    return str(info.value)
