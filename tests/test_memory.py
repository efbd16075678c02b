"""Builds under a small `memory_limit` in profiles.yml: real files, a real DuckDB file."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from elt.cli import cli
from elt.project.seedsql import MIN_OBJECT_SIZE, object_size

SMALL_PROFILE = """elt:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: target/elt.duckdb
      threads: 1
      memory_limit: {limit}
"""


def _project(root: Path, limit: str) -> None:
    (root / "seeds").mkdir()
    (root / "models").mkdir()
    (root / "profiles.yml").write_text(SMALL_PROFILE.format(limit=limit))


def test_json_seeds_load_under_a_small_memory_limit(tmp_path: Path) -> None:
    """Every JSON flavour (array, ndjson, document, json_key, gzip) under 256MB."""
    _project(tmp_path, "256MB")
    seeds = tmp_path / "seeds"
    (seeds / "arr.json").write_text(json.dumps([{"a": i, "b": f"x{i}"} for i in range(500)]))
    (seeds / "nd.ndjson").write_text("".join(json.dumps({"a": i}) + "\n" for i in range(300)))
    (seeds / "doc.json").write_text(json.dumps({"k": list(range(10))}))
    (seeds / "keyed.json").write_text(json.dumps({"items": [{"a": 1}, {"a": 2}]}))
    with gzip.open(seeds / "zipped.json.gz", "wt") as fh:
        fh.write(json.dumps([{"a": i} for i in range(200)]))
    (seeds / "seeds.yml").write_text("seeds:\n  keyed: {path: keyed.json, json_key: items}\n")
    result = CliRunner().invoke(cli, ["build", "--project-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    con = duckdb.connect(str(tmp_path / "target/elt.duckdb"), read_only=True)
    counts = {t: con.execute(f"SELECT count(*) FROM raw.{t}").fetchone()[0]
              for t in ("arr", "nd", "doc", "keyed", "zipped")}
    con.close()
    assert counts == {"arr": 500, "nd": 300, "doc": 1, "keyed": 2, "zipped": 200}


def test_object_size_follows_the_largest_uncompressed_file(tmp_path: Path) -> None:
    big = tmp_path / "big.json.gz"
    payload = json.dumps({"v": "x" * (MIN_OBJECT_SIZE + 1000)})
    with gzip.open(big, "wt") as fh:
        fh.write(payload)
    small = tmp_path / "small.json"
    small.write_text("[]")
    assert object_size([small]) == MIN_OBJECT_SIZE
    assert object_size([small, big]) == len(payload) + 1
    assert big.stat().st_size < MIN_OBJECT_SIZE  # compressed size alone would be too small


def test_project_builds_under_a_small_memory_limit(tmp_path: Path) -> None:
    """This repository's project (its committed seeds) under 256MB, then one changed cell:
    the partitioned flowkit_datasets rebuilds its partitions under the same limit."""
    import shutil

    repo = Path(__file__).resolve().parents[1]
    for name in ("seeds", "models"):
        shutil.copytree(repo / name, tmp_path / name)
    (tmp_path / "profiles.yml").write_text(SMALL_PROFILE.format(limit="256MB"))
    args = ["build", "--exclude", "kind:api", "--project-dir", str(tmp_path)]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    export = sorted((tmp_path / "seeds/flowkit/presence").glob("*.csv"))[-1]
    lines = export.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace(",", ",1", 2).replace(",1", ",", 1)  # one cell gets a 1
    export.write_text("".join(lines))
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "partitions rebuilt" in again.output


def test_publish_reads_large_bodies_over_many_row_groups_under_its_cap(tmp_path: Path) -> None:
    """Publish's connection (200MB, one thread) hashes bodies of ~50 kB spread over several
    row groups; two threads each hold a 2,048-row vector of them and run out of memory."""
    from elt.core import db
    from elt.publish.runner import PUBLISH_MEMORY, PUBLISH_THREADS

    path = tmp_path / "x.duckdb"
    with db.connect(path, wal=False, row_group_size=2048) as con:
        con.execute("CREATE TABLE bodies AS SELECT i, repeat(md5(i::VARCHAR), 1600) AS body "
                    "FROM range(6144) r(i)")
        assert con.execute("SELECT count(DISTINCT row_group_id) FROM "
                           "pragma_storage_info('bodies')").fetchone()[0] == 3
    query = "SELECT count(DISTINCT md5(body)) FROM bodies"
    with db.connect(path, memory_limit=PUBLISH_MEMORY, threads=PUBLISH_THREADS,
                    row_group_size=2048) as con:
        assert con.execute(query).fetchone() == (6144,)
    with db.connect(path, memory_limit=PUBLISH_MEMORY, threads=2, row_group_size=2048) as con:
        with pytest.raises(duckdb.OutOfMemoryException):
            con.execute(query).fetchone()
