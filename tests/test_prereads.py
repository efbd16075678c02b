"""Read before insert (elt/publish/prereads.py), over loopback against the sandbox: a second
checkout (its own database) publishing after the first sends no writes, only reads; a key
the endpoint holds twice is never written and fails naming the count; a held row that
differs goes as an update. Documents are the project's own (models/uois/*.gql)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import E2E, db_query, elt, sandbox_endpoints, stats, write_files, write_profile

from elt.sandbox.server import Sandbox
from elt.sandbox.uois_types import DEMO_EXTERNALIDTYPES

DOCS = Path(__file__).resolve().parents[1] / "models" / "uois"
TYPE = DEMO_EXTERNALIDTYPES[0][0]  # a type a fresh UOIS has (foreign key)
USERS = "id,name,surname,email\n" + "".join(
    f"00000000-0000-0000-0000-00000000000{i},N{i},S{i},u{i}@x.org\n" for i in range(1, 6))
EXTERNAL = "inner_id,outer_id,type_id\n" + "".join(
    f"00000000-0000-0000-0000-00000000000{i},out{i},{TYPE}\n" for i in range(1, 6))


def _publications() -> dict:
    pubs = {}
    for name, key, insert, read in (
            ("uois_users", ["id"], "user_insert.gql", "user_by_id.gql"),
            ("uois_externalids", ["type_id", "outer_id"], "externalid_insert.gql",
             "externalids_of_inner_id.gql")):
        pubs[name] = yaml_pub = {"model": name, "endpoint": "uois", "kind": "graphql",
                                 "key": key, "batch_size": 2,
                                 "graphql": {"document": insert, "result": "msg",
                                             "success": "ok", "answer": "id"}}
        yaml_pub["read"] = {"document": read, "result": "result", "answer": "id"}
    users = pubs["uois_users"]
    users["graphql"] |= {"update": "user_update.gql", "already_there_errors": ["UniqueViolation"]}
    users["read"] |= {"provides": {"lastchange": "lastchange"},
                      "compare": {"name": "name", "surname": "surname", "email": "email"}}
    pubs["uois_externalids"]["graphql"]["already_there"] = ["fail"]
    pubs["uois_externalids"]["read"]["match"] = {"outer_id": "outerId"}
    pubs["uois_externalids"]["depends_on"] = ["uois_users"]
    return {"publications": pubs}


def _project(root: Path, sb: Sandbox) -> Path:
    docs = {f"models/{p.name}": p.read_text(encoding="utf-8") for p in DOCS.glob("*.gql")}
    write_files(root, {
        **docs,
        "seeds/users.csv": USERS, "seeds/externalids.csv": EXTERNAL,
        "models/uois_users.sql": "SELECT * FROM raw.users",
        "models/uois_externalids.sql": "SELECT * FROM raw.externalids",
        "models/publications.yml": json.dumps(_publications()),
    })
    write_profile(root, sandbox_endpoints(sb, ("uois",)))
    return root


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sb.duckdb") as sandbox:
        yield sandbox


def _writes(sb: Sandbox) -> int:
    """Mutation fields the sandbox received (reads are not counted)."""
    return sum(v.get("received", 0) for v in stats(sb)["uois"].values())


def _ledger(root: Path) -> dict[str, int]:
    rows = db_query(root / "target/elt.duckdb",
                    "SELECT status, count(*) FROM _elt.ledger GROUP BY ALL")
    return dict(rows)  # type: ignore[arg-type]


def test_second_checkout_sends_only_reads(tmp_path: Path, sb: Sandbox) -> None:
    first, second = _project(tmp_path / "a", sb), _project(tmp_path / "b", sb)
    for root in (first, second):
        assert elt(root, "build").code == 0
    run = elt(first, "publish")
    assert run.code == 0, run.output
    assert _writes(sb) == 10
    before = stats(sb)["requests"]
    run = elt(second, "publish")
    assert run.code == 0, run.output
    assert _writes(sb) == 10  # the second checkout wrote nothing
    assert stats(sb)["requests"] - before >= 2  # but it did read (batched: 3 + 3 + login)
    assert _ledger(second) == {"already_there": 10}
    assert sb.store.scalar("SELECT count(*) FROM uois_externalids") == 5
    assert run.stdout.count("5 already there") == 2


def test_key_held_twice_is_never_written_and_fails(tmp_path: Path, sb: Sandbox) -> None:
    root = _project(tmp_path / "a", sb)
    copies = ("20000000-0000-0000-0000-000000000001", "20000000-0000-0000-0000-000000000002")
    for copy in copies:  # another writer stored the same (inner, type, outer) twice
        sb.store.query("INSERT INTO uois_externalids VALUES (?, ?, ?, 'out2', now(), "
                       "nextval('uois_seq'))",
                       [copy, "00000000-0000-0000-0000-000000000002", TYPE])
    assert elt(root, "build").code == 0
    run = elt(root, "publish")
    assert run.code != 0
    assert "holds 2 rows for key" in run.output
    assert sb.store.scalar("SELECT count(*) FROM uois_externalids WHERE outer_id = 'out2'") == 2
    assert _writes(sb) == 5 + 4  # users and the four other ids; never out2
    (status,), = db_query(root / "target/elt.duckdb",
                          "SELECT status FROM _elt.ledger WHERE key LIKE '%out2%'")
    assert status == "failed"


def test_held_row_that_differs_goes_as_an_update(tmp_path: Path, sb: Sandbox) -> None:
    root = _project(tmp_path / "a", sb)
    sb.store.query("INSERT INTO uois_users VALUES ('00000000-0000-0000-0000-000000000003', "
                   "'N3', 'Old', 'u3@x.org', NULL, now(), nextval('uois_seq'))")
    assert elt(root, "build").code == 0
    run = elt(root, "publish", "-s", "uois_users")
    assert run.code == 0, run.output
    counters = stats(sb)["uois"]
    assert sum(v.get("updated", 0) for v in counters.values()) == 1
    assert sum(v.get("inserted", 0) for v in counters.values()) == 4
    assert sb.store.scalar("SELECT surname FROM uois_users WHERE id = "
                           "'00000000-0000-0000-0000-000000000003'") == "S3"


def test_interference_answer_fails_the_run_naming_the_key(tmp_path: Path, sb: Sandbox) -> None:
    """Another writer stored a key twice: our PATCH of it answers 500 "Ambiguous dataset".
    The row fails, the run exits non-zero, and its error line names the key."""
    p = E2E(tmp_path / "p", sb, n=3, max_attempts=1)
    p.build()
    assert elt(p.root, "publish").code == 0
    sb.store.query("INSERT INTO flowkit_datasets SELECT mdid + 1000, * EXCLUDE (mdid) "
                   "FROM flowkit_datasets WHERE dt = '2020-01-02'")
    p.set_datasets("i + 5")
    p.build()
    run = elt(p.root, "publish")
    assert run.code != 0
    key = '["residents","residents.residents",3,2,"2020-01-02 00:00:00"]'
    (line,) = [x for x in run.error_lines() if "flowkit_data" in x]
    assert f"key {key}: HTTP 500" in line and "Ambiguous dataset" in line, line
    assert p.sql("SELECT status FROM _elt.ledger WHERE key = '" + key + "'") == [("failed",)]
