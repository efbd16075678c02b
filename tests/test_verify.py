"""`elt verify` (elt/publish/verify.py) end to end: the CLI in a temp copy of the project
against a sandbox the test starts on loopback. Acceptance of issue 29: one changed user is
one update; verify then finds 0 differences; with the ledger deleted verify finds 0 missing
and publish writes nothing. A row the API lost is reported missing (exit 1) and --repair
resends it; a dataset another writer replaced (new mdid) or duplicated is found."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest
from helpers import REPO, db_query, elt, sandbox_endpoints, stats, write_profile
from sandbox_client import bearer, dataset

from elt.sandbox.server import Sandbox

UOIS = "uois_*"  # the UOIS publications (all declare a `read:`)
USER = "5b13a00c-712f-4eff-8475-ccc063c32083"  # the first user of systemdata.json


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sb.duckdb") as sandbox:
        yield sandbox


def _copy(root: Path, sb: Sandbox) -> Path:
    for name in ("seeds", "models"):
        shutil.copytree(REPO / name, root / name)
    write_profile(root, sandbox_endpoints(sb))
    assert elt(root, "build").code == 0
    return root


def _counter(sb: Sandbox, field: str, service: str = "uois") -> int:
    return sum(v.get(field, 0) for v in stats(sb)[service].values())


def _verify(root: Path, *args: str) -> tuple[int, str]:
    run = elt(root, "verify", *args)
    assert run.exception is None, run.output
    return run.code, run.output


def _line(output: str, pub: str) -> str:
    """The publication's last line (--repair checks twice: before and after its publish)."""
    return [x for x in output.splitlines() if x.startswith(f"verify {pub}:")][-1]


def _drop_ledger(root: Path) -> None:
    with duckdb.connect(str(root / "target/elt.duckdb")) as con:
        con.execute("DELETE FROM _elt.ledger")


def test_acceptance_one_update_then_verify_then_lost_ledger(tmp_path: Path, sb: Sandbox) -> None:
    root = _copy(tmp_path / "p", sb)
    run = elt(root, "publish", "-s", UOIS)
    assert run.code == 0, run.output
    seed = root / "seeds/uois/systemdata.json"
    data = json.loads(seed.read_text(encoding="utf-8"))
    assert data["users"][0]["id"] == USER
    data["users"][0]["surname"] = "Changed"
    seed.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    assert elt(root, "build").code == 0
    writes = _counter(sb, "received")
    run = elt(root, "publish", "-s", UOIS)
    assert run.code == 0, run.output
    assert _counter(sb, "received") - writes == 1 and _counter(sb, "updated") == 1
    assert sb.store.scalar(f"SELECT surname FROM uois_users WHERE id = '{USER}'") == "Changed"

    code, out = _verify(root, "-s", UOIS)
    assert code == 0, out
    for pub in ("uois_users", "uois_groups", "uois_memberships", "uois_externalids"):
        line = _line(out, pub)
        assert " 0 missing, 0 stale, 0 duplicated, 0 extra" in line, line
    assert "300 checked" in _line(out, "uois_users")

    _drop_ledger(root)
    code, out = _verify(root, "-s", UOIS)
    assert code == 0 and " 0 missing" in _line(out, "uois_externalids"), out
    writes, requests = _counter(sb, "received"), stats(sb)["requests"]
    run = elt(root, "publish", "-s", UOIS)
    assert run.code == 0, run.output
    assert _counter(sb, "received") == writes  # 0 writes
    assert stats(sb)["requests"] > requests  # only reads
    assert "300 already there" in run.output


def test_lost_row_is_missing_and_repair_resends_it(tmp_path: Path, sb: Sandbox) -> None:
    root = _copy(tmp_path / "p", sb)
    assert elt(root, "publish", "-s", "uois_users").code == 0
    sb.store.query(f"DELETE FROM uois_users WHERE id = '{USER}'")  # the API lost a row
    code, out = _verify(root, "-s", "uois_users")
    assert code == 1
    line = _line(out, "uois_users")
    assert "1 missing (1 the ledger records as delivered)" in line, line
    assert f'missing: ["{USER}"]' in out
    inserted = _counter(sb, "inserted")
    code, out = _verify(root, "-s", "uois_users", "--repair")
    assert code == 0, out
    assert _counter(sb, "inserted") == inserted + 1
    assert sb.store.scalar(f"SELECT count(*) FROM uois_users WHERE id = '{USER}'") == 1
    code, out = _verify(root, "-s", "uois_users")
    assert code == 0 and " 0 missing" in _line(out, "uois_users"), out


def test_stale_user_is_found_and_repaired_by_an_update(tmp_path: Path, sb: Sandbox) -> None:
    root = _copy(tmp_path / "p", sb)
    assert elt(root, "publish", "-s", "uois_users").code == 0
    sb.store.query(f"UPDATE uois_users SET surname = 'Other' WHERE id = '{USER}'")
    code, out = _verify(root, "-s", "uois_users")
    assert code == 1 and "1 stale" in _line(out, "uois_users")
    assert f'stale: ["{USER}"] (surname)' in out
    code, out = _verify(root, "-s", "uois_users", "--repair")
    assert code == 0, out
    assert _counter(sb, "updated") == 1
    assert sb.store.scalar(f"SELECT surname FROM uois_users WHERE id = '{USER}'") == "Růžička"


def test_flowkit_dataset_replaced_or_duplicated_by_another_writer(tmp_path: Path,
                                                                  sb: Sandbox) -> None:
    """Another writer PATCHes one dataset (a new mdid: our mappings of the old one are gone)
    and stores another twice: verify reports one stale (naming both mdids), one duplicated."""
    root = _copy(tmp_path / "p", sb)
    run = elt(root, "publish", "-s", "flowkit_setup", "-s", "flowkit_data")
    assert run.code == 0, run.output
    (dt, old), = db_query(root / "target/elt.duckdb",
                          "SELECT key_json->>'dt', answer FROM _elt.ledger WHERE publication "
                          "= 'flowkit_data' AND key_json->>'indicator_id' = "
                          "'residents.residents' ORDER BY key LIMIT 1")
    body = dataset(dt=dt, data=1)
    r = httpx.patch(f"{sb.url}/v1/data", json=body, headers=bearer(sb), timeout=30)
    assert r.status_code == 201, r.text
    sb.store.query("INSERT INTO flowkit_datasets SELECT mdid + 100000, * EXCLUDE (mdid) FROM "
                   "flowkit_datasets WHERE mdid = (SELECT max(mdid) FROM flowkit_datasets "
                   "WHERE indicator_id <> 'residents.residents')")
    sb.store.query("INSERT INTO flowkit_scope_mappings VALUES (100000, 'admin', "
                   "(SELECT max(mdid) FROM flowkit_datasets), now())")  # as a POST maps it
    code, out = _verify(root, "-s", "flowkit_data")
    assert code == 1
    line = _line(out, "flowkit_data")
    assert "0 missing, 1 stale, 1 duplicated" in line, line
    assert f"(holds {r.json()}, the ledger {old})" in out


def test_scope_mappings_dropped_by_a_patch_are_found_and_repaired(tmp_path: Path,
                                                                   sb: Sandbox) -> None:
    """Another writer PATCHes a mapped dataset: the backend gives it a new mdid and drops the
    mappings of the old one. verify names them missing; --repair PATCHes our dataset back
    (a newer mdid), rebuilds the mappings from the answer and sends them."""
    root = _copy(tmp_path / "p", sb)
    run = elt(root, "publish", "-s", "flowkit_setup", "-s", "flowkit_data")
    assert run.code == 0 and "flowkit_scope_mappings" in run.output, run.output
    (dt, mdid, n), = db_query(root / "target/elt.duckdb", """
        SELECT d.key_json->>'dt', d.answer, count(*) FROM _elt.ledger d JOIN _elt.ledger m
          ON m.publication = 'flowkit_scope_mappings' AND m.key_json->>'mdid' = d.answer
        WHERE d.publication = 'flowkit_data' AND d.key_json->>'indicator_id' =
              'residents.residents' GROUP BY ALL ORDER BY 1 LIMIT 1""")
    r = httpx.patch(f"{sb.url}/v1/data", json=dataset(dt=dt, data=1), headers=bearer(sb),
                    timeout=30)
    assert r.status_code == 201, r.text
    assert sb.store.scalar(f"SELECT count(*) FROM flowkit_scope_mappings WHERE mdid = {mdid}") == 0
    code, out = _verify(root, "-s", "flowkit_scope_mappings")
    assert code == 1
    line = _line(out, "flowkit_scope_mappings")
    assert f"{n} missing ({n} the ledger records as delivered)" in line, line
    assert f",{mdid}]" in out.split("missing: ")[1].splitlines()[0]
    code, out = _verify(root, "-s", "flowkit_data", "-s", "flowkit_scope_mappings", "--repair")
    assert code == 0, out
    assert " 0 missing, 0 stale" in _line(out, "flowkit_scope_mappings")
    assert sb.store.scalar("SELECT count(*) FROM flowkit_scope_mappings m WHERE NOT EXISTS "
                           "(SELECT 1 FROM flowkit_datasets d WHERE d.mdid = m.mdid)") == 0
