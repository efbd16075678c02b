"""Issue #31: a refused publish changes nothing, honest exit codes, bad files named first.

Real CLI runs against a project built into a real DuckDB file and the sandbox on loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import E2E, elt, stats

from elt.sandbox.server import Sandbox


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(None) as sandbox:
        yield sandbox


def _published(p: E2E, name: str) -> tuple[list[str], list[tuple]]:
    import duckdb

    with duckdb.connect(str(p.db), read_only=True) as con:
        cur = con.execute(f"SELECT * FROM published.{name} ORDER BY ALL")
        return [d[0] for d in cur.description], cur.fetchall()


def test_a_publication_refused_for_a_bad_key_keeps_its_published_view(
        tmp_path: Path, sb: Sandbox) -> None:
    p = E2E(tmp_path, sb, n=4)
    p.build()
    first = elt(tmp_path, "publish", "-s", "flowkit_data")
    assert first.code == 0, first.output
    before = _published(p, "flowkit_data")
    assert "dt" in before[0] and len(before[1]) == 4
    pubs = tmp_path / "models" / "publications.yml"
    pubs.write_text(pubs.read_text().replace("srid, trid, dt]", "srid, trid, dtx]"))
    refused = elt(tmp_path, "publish", "-s", "flowkit_data", "--exclude", "flowkit_scopes")
    assert refused.code != 0, refused.output
    assert "dtx" in refused.stderr
    assert _published(p, "flowkit_data") == before


def test_export_results_to_a_path_that_cannot_be_written_fails_before_sending(
        tmp_path: Path, sb: Sandbox) -> None:
    p = E2E(tmp_path, sb, n=3)
    p.build()
    (tmp_path / "afile").write_text("not a folder")
    for target in (tmp_path / "afile" / "out.jsonl", Path("/proc/elt.jsonl")):
        run = elt(tmp_path, "publish", "--export-results", str(target))
        assert run.code == 1, run.output
        assert len(run.error_lines()) == 1 and "--export-results" in run.error_lines()[0]
        assert str(target) in run.error_lines()[0]
        assert "internal error" not in run.output
    assert stats(sb)["requests"] == 0  # nothing was sent
    assert p.sql("SELECT count(*) FROM _elt.ledger")[0][0] == 0
