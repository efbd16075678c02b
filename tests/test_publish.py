"""The publish runner against a mocked REST API (pytest-httpx): exact request shapes, ledger,
re-runs, dry run, export, selection and skipping. Models are built with the real build."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from fake_api import TOKEN, FakeApi, Project, by_name, payload
from pytest_httpx import HTTPXMock

from elt.core.errors import ConfigError, PublishError
from elt.publish import journal, runner
from elt.transform import nodestate


@pytest.fixture
def api(httpx_mock: HTTPXMock) -> FakeApi:
    fake = FakeApi()
    httpx_mock.add_callback(fake, is_reusable=True, is_optional=True)
    return fake


@pytest.fixture
def proj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    return Project(tmp_path, monkeypatch)


def test_publish_sends_gzip_bodies_and_records_answers(proj: Project, api: FakeApi) -> None:
    results = proj.publish()
    res = by_name(results)
    assert res["data"].status == "success" and res["data"].rows == 3
    assert res["data"].message.startswith("3/3 acknowledged (100%) in ")
    posts = [c for c in api.calls if c[1] == "/v1/data"]
    assert len(posts) == 3
    for method, _, _body, headers in posts:
        assert method == "POST" and headers["content-encoding"] == "gzip"
        assert headers["authorization"] == f"Bearer {TOKEN}"
    sent = {b["metadata"]["category_id"]: b for _, _, b, _ in posts}
    assert sent["presence"] == payload("presence", "2020-01-01 00:00:00", 2)
    answers = dict(proj.sql("SELECT category_id, answer FROM published.data"))
    assert sorted(answers.values()) == ["101", "102", "103"]
    # new rows are hashed by the sender: the md5 of the body text exactly as sent
    assert proj.sql("SELECT count(*) FROM _elt.ledger l JOIN datasets d ON l.key = "
                    "json_array(d.category_id, d.dt)::VARCHAR WHERE l.publication = 'data' "
                    "AND l.hash = md5(d.payload::VARCHAR)") == [(3,)]
    # the model reading published.data was rebuilt before `maps` ran: one mapping per mdid
    maps = sorted(b["mdid"] for m, p, b in api.data_calls() if p == "/v1/scope_mapping")
    assert maps == [101, 102, 103] and res["maps"].rows == 3
    assert [r.name for r in results.results] == ["data", "maps", "items"]
    assert proj.sql("SELECT status, sent, acknowledged, failed FROM _elt.publish_runs") == [
        ("success", 8, 8, 0)]
    assert not (proj.root / "target" / "elt.duckdb.publish" / "journal.ndjson").exists()


def test_second_publish_sends_nothing(proj: Project, api: FakeApi,
                                      httpx_mock: HTTPXMock) -> None:
    proj.publish()
    before = len(httpx_mock.get_requests())
    results = proj.publish()
    assert len(httpx_mock.get_requests()) == before  # not even a heartbeat
    assert {r.status for r in results.results} == {"up_to_date"}


def test_303_in_upsert_mode_is_followed_by_a_patch(proj: Project, api: FakeApi) -> None:
    """The key exists with data the ledger knows nothing of: 303 is no proof the data is ours,
    so the row is patched (and gets the new mdid the PATCH answers)."""
    key = tuple(sorted({"category_id": "presence", "dt": "2020-01-01 00:00:00"}.items()))
    api.datasets[key] = 77
    proj.publish(select=["data"])
    presence = [(m, b["metadata"]["category_id"]) for m, p, b in api.data_calls()
                if p == "/v1/data" and b["metadata"]["category_id"] == "presence"]
    assert presence == [("POST", "presence"), ("PATCH", "presence")]
    assert proj.sql("SELECT l.http_status, l.answer, l.status, l.op FROM published.data d "
                    "JOIN _elt.ledger l USING (seq) WHERE d.category_id = 'presence'") == [
        (201, str(api.datasets[key]), "acknowledged", "update")]
    assert api.datasets[key] != 77
    # maps reads published.data: not selected, it follows with the mapping of the new mdid
    assert ("POST", "/v1/scope_mapping", {"scope": "public", "mdid": api.datasets[key]}) in \
        api.data_calls()


def test_an_update_answered_not_found_is_inserted_once(proj: Project, api: FakeApi) -> None:
    """A batch answered "already there" for rows of which only some existed: the update of a
    missing one answers 404. Retried as an update it failed in every run; now it goes again
    as an insert, once (a server answering 303 and 404 for the same key fails it)."""
    api.reject["presence"] = [(303, 77), (404, "Dataset not found")]
    api.reject["residents"] = [(303, 5), (404, "x"), (303, 5), (404, "Dataset not found")]
    results = proj.publish(select=["data"])
    calls = [(m, b["metadata"]["category_id"]) for m, p, b in api.data_calls() if p == "/v1/data"]
    assert [m for m, c in calls if c == "presence"] == ["POST", "PATCH", "POST"]
    assert [m for m, c in calls if c == "residents"] == ["POST", "PATCH", "POST", "PATCH"]
    assert proj.sql("SELECT d.category_id, l.status, l.op, l.http_status FROM published.data d "
                    "JOIN _elt.ledger l USING (seq) ORDER BY 1") == [
        ("movements", "acknowledged", "insert", 201),
        ("presence", "acknowledged", "insert", 201),
        ("residents", "failed", "update", 404)]
    assert results.failed


def test_a_refused_token_stops_the_sending(proj: Project, api: FakeApi) -> None:
    """A wrong static token: every request answers 401. The first one stops the sending
    (it used to send every pending row for one 401 each); the rest stays pending."""
    for category in ("residents", "presence", "movements"):
        api.reject[category] = (401, "Invalid token")
    results = proj.publish(select=["data"], concurrency=1)
    assert results.failed
    message = by_name(results)["data"].message
    assert "stopped: the endpoint refused our credentials (HTTP 401: Invalid token)" in message
    assert len([c for c in api.data_calls() if c[1] == "/v1/data"]) == 1
    assert proj.sql("SELECT status, count(*) FROM _elt.ledger GROUP BY 1") == [("failed", 1)]
    api.reject.clear()  # the token fixed: the refused row and the two never sent go out
    assert not proj.publish(select=["data"]).failed
    assert len([c for c in api.data_calls() if c[1] == "/v1/data"]) == 4


def test_an_unset_secret_stops_only_what_talks_to_its_endpoint(
        proj: Project, api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """`{{ env_var('TOK') }}` in an endpoint: without TOK the build and `elt sql` run (a
    teammate reads the staging database without the publish secret); publish names it."""
    monkeypatch.delenv("TOK")
    proj.build()
    proj.ctx().sql("SELECT count(*) AS n FROM datasets")
    assert proj.out.getvalue().split()[-1] == "3"
    with pytest.raises(ConfigError, match=r"profiles.yml: outputs.dev.endpoints.api.auth.token: "
                                          r"environment variable TOK is not set"):
        proj.publish(select=["data"])
    assert api.calls == []
    assert not runner.check_endpoints(proj.ctx())  # debug names it, for that endpoint
    assert "error: endpoint api: " in proj.err.getvalue()
    assert "environment variable TOK is not set" in proj.err.getvalue()


def test_a_refused_token_stops_the_waves_after_it_too(proj: Project, api: FakeApi) -> None:
    pubs = proj.root / "models" / "publications.yml"
    pubs.write_text(pubs.read_text().replace("    depends_on: [data]\n",
                                             "    depends_on: [data]\n    wave: depth\n", 1))
    (proj.root / "models" / "items.sql").write_text(
        "SELECT * FROM (VALUES (1, 'a', 0), (2, 'b', 1)) t(id, name, depth)")
    assert not proj.ctx().build().failed
    api.reject[None] = [(401, "Invalid token"), (401, "Invalid token")]  # items' bodies
    results = proj.publish(select=["items"])
    assert "stopped: the endpoint refused our credentials" in by_name(results)["items"].message
    assert len([c for c in api.data_calls() if c[1] == "/v1/items"]) == 1  # wave 1 not sent


def test_4xx_row_fails_then_is_retried_alone(proj: Project, api: FakeApi) -> None:
    api.reject["movements"] = (400, "No data to ingest")
    results = proj.publish(select=["data"])
    assert results.failed
    assert by_name(results)["data"].message.startswith("2/3 acknowledged (67%)")
    assert proj.sql("SELECT status, http_status, answer FROM published.data WHERE "
                    "category_id = 'movements'") == [("failed", 400, "No data to ingest")]
    api.calls.clear()
    results = proj.publish(select=["data"])
    assert not results.failed
    assert [(m, b["metadata"]["category_id"]) for m, p, b in api.data_calls()
            if p == "/v1/data"] == [("POST", "movements")]


def test_changed_row_is_patched_and_mirror_deletes(proj: Project, api: FakeApi) -> None:
    proj.publish()
    api.calls.clear()
    proj.rows[1] = ("presence", "2020-01-01 00:00:00", 20)
    proj.items = [(1, "a")]
    proj.build()
    results = proj.publish(select=["data", "items"])
    new_mdid = api.mdid  # the PATCH made a new dataset id; its mapping follows in the run
    assert api.data_calls() == [
        ("PATCH", "/v1/data", payload("presence", "2020-01-01 00:00:00", 20)),
        ("POST", "/v1/scope_mapping", {"scope": "public", "mdid": new_mdid}),
        ("DELETE", "/v1/items", {"id": 2})]
    assert by_name(results)["items"].message.startswith("1/1 acknowledged")
    assert proj.sql("SELECT id FROM published.items") == [("1",)]


def test_dry_run_counts_and_sends_nothing(proj: Project, api: FakeApi,
                                          httpx_mock: HTTPXMock) -> None:
    proj.rows[0] = ("residents", "2020-01-01 00:00:00", 1)
    proj.rows.append((f"a{TOKEN}", "2020-03-01 00:00:00", 9))  # first key; secret redacted
    proj.build()
    results = proj.publish(dry_run=True, select=["data"])
    assert httpx_mock.get_requests() == []
    assert by_name(results)["data"].message == (
        "dry run: 4 new, 0 changed, 0 unchanged, 0 to delete, 0 failed to retry, "
        "0 unknown to resend, 0 held until their earlier request settles")
    out = proj.out.getvalue()
    assert "sample insert -> api: " in out and TOKEN not in out and "***" in out
    assert proj.sql("SELECT count(*) FROM _elt.ledger") == [(0,)]


def test_export_results_one_line_per_row(proj: Project, api: FakeApi, tmp_path: Path) -> None:
    api.reject["residents"] = (422, "bad value")
    export = tmp_path / "out" / "results.jsonl"
    proj.publish(select=["data"], export_results=export)
    lines = sorted((json.loads(x) for x in export.read_text().splitlines()),
                   key=lambda x: x["key"])
    assert len(lines) == 3 and set(lines[0]) == {"publication", "key", "op", "status",
                                                 "http_status", "answer"}
    assert lines[-1] == {"publication": "data", "key": '["residents","2020-01-01 00:00:00"]',
                         "op": "insert", "status": "failed", "http_status": 422,
                         "answer": "bad value"}


def test_select_exclude_and_dependencies(proj: Project, api: FakeApi) -> None:
    results = proj.publish(select=["items"])
    assert [r.name for r in results.results] == ["items"]
    results = proj.publish(select=["+items"], exclude=["maps"])
    assert [r.name for r in results.results] == ["data", "items"]
    with pytest.raises(ConfigError, match="matches no publication"):
        proj.publish(select=["nope"])
    with pytest.raises(ConfigError, match="matches no publication"):
        proj.publish(select=["tag:nope"])


def test_failed_build_or_tests_skip_the_publication_and_downstream(proj: Project,
                                                                    api: FakeApi) -> None:
    with duckdb.connect(str(proj.root / "target" / "elt.duckdb")) as con:
        nodestate.record_status(con, name="datasets", kind="model", status="error",
                                message="boom")
    run = proj.publish()
    assert run.failed  # exit non-zero: selected publications were not sent
    results = by_name(run)
    assert results["data"].status == "skipped" and "last build error" in results["data"].message
    assert results["items"].status == "skipped" and "upstream publication data" in \
        results["items"].message
    assert api.calls == []
    proj.build()
    with duckdb.connect(str(proj.root / "target" / "elt.duckdb")) as con:
        nodestate.set_tests_ok(con, "datasets", False)
    assert "failed data tests" in by_name(proj.publish())["data"].message


def test_crashed_run_rows_are_resent_and_duplicates_count_as_sent(proj: Project,
                                                                  api: FakeApi) -> None:
    journal = proj.root / "target" / "elt.duckdb.publish" / "journal.ndjson"
    journal.parent.mkdir(parents=True)
    key = '["movements","2020-02-01 00:00:00"]'
    journal.write_text(json.dumps({
        "run": "crashed", "n": 1, "pub": "data", "key": key, "op": "insert", "hash": "x",
        "status": "unknown", "ts": "2024-01-01T00:00:00",
        "key_json": {"category_id": "movements", "dt": "2020-02-01 00:00:00"}}) + "\n")
    api.reject["movements"] = (400, "duplicate key: UniqueViolation")
    results = proj.publish(select=["data"])
    assert not results.failed
    assert proj.sql(f"SELECT status, answer FROM _elt.ledger WHERE key = '{key}'") == [
        ("acknowledged", None)]
    assert proj.sql("SELECT status FROM _elt.publish_runs") == [("success",)]


def test_nothing_secret_is_stored(proj: Project, api: FakeApi, tmp_path: Path) -> None:
    api.reject["presence"] = (401, f"Invalid token {TOKEN}")
    proj.publish(export_results=tmp_path / "x.jsonl")
    dump = str(proj.sql("SELECT * FROM _elt.ledger")) + (tmp_path / "x.jsonl").read_text()
    assert TOKEN not in dump and "***" in dump
    assert TOKEN not in proj.out.getvalue() + proj.err.getvalue()


def test_status_and_debug(proj: Project, api: FakeApi) -> None:
    api.reject["presence"] = (400, "nope")
    proj.publish(select=["data"])
    from elt.publish.runner import check_endpoints, publication_status

    columns, rows = publication_status(proj.ctx())
    assert columns == ["publication", "model", "endpoint", "total", "acknowledged",
                       "already_there", "failed", "pending", "held", "changed", "orphaned",
                       "refused", "waiting"]
    assert rows[0] == ("data", "datasets", "api", 3, 2, 0, 1, 1, 0, 0, 0, 0, 0)
    assert check_endpoints(proj.ctx())
    assert "endpoint api: https://api.test/v1 up, version 9.9.9" in proj.out.getvalue()


@pytest.mark.parametrize("change, message", [
    ("endpoint: api\n    kind: rest\n    key: [category_id, dt]\n    mode: upsert",
     "endpoint: nowhere\n    kind: rest\n    key: [category_id, dt]\n    mode: upsert"),
    ("depends_on: [data]", "depends_on: [ghost]"),
    ("depends_on: [data]", "depends_on: [items]"),
    ("mode: mirror", "mode: sometimes"),
])
def test_spec_errors_name_file_and_publication(proj: Project, change: str, message: str) -> None:
    path = proj.root / "models" / "publications.yml"
    path.write_text(path.read_text().replace(change, message, 1))
    with pytest.raises(ConfigError) as err:
        proj.publish()
    assert "publications.yml" in str(err.value) and "publication '" in str(err.value)


def test_unreachable_endpoint_stops_before_sending(proj: Project, api: FakeApi) -> None:
    api.down = True
    results = proj.publish()
    assert results.failed and api.calls == []
    assert {r.status for r in results.results} <= {"error", "skipped"}
    assert "heartbeat /heartbeat answered HTTP 503" in by_name(results)["data"].message
    assert proj.sql("SELECT status FROM _elt.publish_runs") == [("error",)]


def test_journal_is_merged_while_sending(proj: Project, httpx_mock: HTTPXMock,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeApi()

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return fake(request)

    httpx_mock.add_callback(slow, is_reusable=True)
    merged: list[int] = []
    real = journal.try_merge

    def spy(db_path: Path, directory: Path, **kw: Any) -> bool:
        merged.append(len(journal.rotated_files(directory)))
        return real(db_path, directory, **kw)

    monkeypatch.setattr(runner, "MERGE_EVERY", 0.005)
    monkeypatch.setattr(journal, "try_merge", spy)
    results = proj.publish(select=["data"], concurrency=1)
    # the final merge does not go through try_merge: these ran while sending
    assert not results.failed and any(merged)
    assert proj.sql("SELECT count(*), min(status) FROM published.data") == [(3, "acknowledged")]
    assert list((proj.root / "target" / "elt.duckdb.publish").glob("journal*")) == []


def test_dry_run_applies_the_same_gating(proj: Project, api: FakeApi,
                                         httpx_mock: HTTPXMock) -> None:
    """A dry run must not promise rows the real run would skip (failed tests upstream)."""
    with duckdb.connect(str(proj.root / "target" / "elt.duckdb")) as con:
        nodestate.set_tests_ok(con, "datasets", False)
    run = proj.publish(dry_run=True)
    results = by_name(run)
    assert run.failed and httpx_mock.get_requests() == []
    assert results["data"].message.startswith("would be skipped: model datasets failed")
    assert results["items"].status == "skipped"
    assert results["items"].message == "would be skipped: upstream publication data skipped"


@pytest.mark.parametrize("broken, message", [
    ("graphql: {document: nowhere.gql}", "nowhere.gql"),
    ("rest: {insert: {method: POST}}", "rest.insert needs a `path`"),
])
def test_a_broken_publication_fails_before_anything_is_sent(
        proj: Project, api: FakeApi, httpx_mock: HTTPXMock, broken: str, message: str) -> None:
    """Nothing of `ghost` is pending (its model is empty), and another one is selected:
    the mistake is still reported at once, not on the day rows appear."""
    (proj.root / "models" / "ghost.sql").write_text("SELECT 1 AS id WHERE false")
    with open(proj.root / "models" / "publications.yml", "a") as f:
        f.write(f"  ghost:\n    model: ghost\n    endpoint: api\n    key: [id]\n"
                f"    {broken}\n")
    proj.build()
    with pytest.raises(PublishError, match=message):
        proj.publish(select=["data"])
    assert httpx_mock.get_requests() == []


def test_a_no_op_publish_reads_no_body_until_its_model_or_ledger_moves(
        proj: Project, api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a run found nothing to send, the next one skips the classification (no body
    hashed) while the model's version and the publication's ledger rows are as they were;
    a rebuild or a ledger row that changed makes it classify, and send, again."""
    from elt.publish import ledger

    classified: list[str] = []
    real_copy = ledger.copy_pending

    def copy_pending(con: Any, q: Any, *args: Any, **kw: Any) -> tuple[int, int]:
        classified.append(q.publication)
        return real_copy(con, q, *args, **kw)

    monkeypatch.setattr(ledger, "copy_pending", copy_pending)
    proj.publish()  # sends every row; all acknowledged: the marks are recorded after it
    assert sorted(classified) == ["data", "items", "maps"]
    assert sorted(r[0] for r in proj.sql("SELECT publication FROM _elt.publish_marks")) == [
        "data", "items", "maps"]
    classified.clear()
    results = proj.publish()
    assert classified == []
    assert {r.status for r in results.results} == {"up_to_date"}
    with duckdb.connect(str(proj.root / "target" / "elt.duckdb")) as con:
        before = con.execute("SELECT * FROM _elt.publish_marks ORDER BY 1").fetchall()
        con.execute("DELETE FROM _elt.publish_marks")
    api.calls.clear()
    results = proj.publish()  # a full classification agrees: nothing to send
    assert sorted(classified) == ["data", "items", "maps"] and api.calls == []
    assert {r.status for r in results.results} == {"up_to_date"}
    assert proj.sql("SELECT * FROM _elt.publish_marks ORDER BY 1") == before
    classified.clear()
    proj.rows[2] = ("movements", "2020-02-01 00:00:00", 30)  # a rebuild moves the version
    proj.build()
    api.calls.clear()
    proj.publish(select=["data"])  # and maps, which reads its answers (rebuilt: a new version)
    assert sorted(classified) == ["data", "maps"]
    assert [(m, b["metadata"]["category_id"]) for m, p, b in api.data_calls()
            if p == "/v1/data"] == [("PATCH", "movements")]
    classified.clear()
    with duckdb.connect(str(proj.root / "target" / "elt.duckdb")) as con:  # a row now failed
        con.execute("UPDATE _elt.ledger SET status = 'failed' WHERE publication = 'data' "
                    "AND key LIKE '%residents%'")
    api.calls.clear()
    proj.publish(select=["data"])
    assert "data" in classified
    assert [(m, b["metadata"]["category_id"]) for m, p, b in api.data_calls()
            if p == "/v1/data"] == [("POST", "residents"), ("PATCH", "residents")]  # 303


def test_a_send_with_a_row_not_acknowledged_records_no_mark(proj: Project,
                                                            api: FakeApi) -> None:
    """Only a send whose rows were all acknowledged leaves a mark: the failed row of `data`
    is sent again by the next run, which classifies (`maps` and `items`, downstream of it,
    were skipped)."""
    api.reject["residents"] = (422, "bad value")
    results = proj.publish()
    assert by_name(results)["data"].status == "error"
    assert proj.sql("SELECT count(*) FROM information_schema.tables "
                    "WHERE table_name = 'publish_marks'") == [(0,)]
    api.calls.clear()
    results = proj.publish()
    assert [(m, b["metadata"]["category_id"]) for m, p, b in api.data_calls()
            if p == "/v1/data"] == [("POST", "residents")]
    assert by_name(results)["data"].status == "success"
    assert sorted(r[0] for r in proj.sql("SELECT publication FROM _elt.publish_marks")) == [
        "data", "items", "maps"]


def test_status_and_dry_run_read_a_clean_mark_instead_of_classifying(
        proj: Project, api: FakeApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """With every publication's mark clean, `elt status` and `--dry-run` hash no body and say
    what a full classification says."""
    from elt.publish import ledger
    from elt.publish.runner import publication_status

    proj.publish()
    proj.rows.append(("presence", "2020-03-01 00:00:00", 4))  # POST
    proj.rows[0] = ("residents", "2020-01-01 00:00:00", 5)  # PATCH, answered 303
    api.reject["residents"] = (303, 777)
    proj.build()
    proj.publish()
    dry_message = by_name(proj.publish(dry_run=True))["data"].message
    full = publication_status(proj.ctx())[1]
    assert full[0] == ("data", "datasets", "api", 4, 3, 1, 0, 0, 0, 0, 0, 0, 0)
    assert dry_message.startswith("dry run: 0 new, 0 changed, 4 unchanged, 0 to delete")
    with duckdb.connect(str(proj.root / "target" / "elt.duckdb")) as con:
        con.execute("DELETE FROM _elt.publish_marks")
    classified: list[str] = []
    real_counts = ledger.pending_counts
    monkeypatch.setattr(ledger, "pending_counts", lambda con, q, *a: (
        classified.append(q.publication), real_counts(con, q, *a))[1])
    assert publication_status(proj.ctx())[1] == full  # what a classification says ...
    assert by_name(proj.publish(dry_run=True))["data"].message == dry_message
    assert sorted(classified) == ["data", "data", "items", "items", "maps", "maps"]
    proj.publish()  # classifies: nothing to send, the marks recorded again
    classified.clear()
    assert publication_status(proj.ctx())[1] == full  # ... and a clean mark says the same
    assert by_name(proj.publish(dry_run=True))["data"].message == dry_message
    assert classified == []


@pytest.mark.parametrize("select", [(), ("maps",)])
def test_a_reader_left_out_of_the_run_that_moved_its_answers_is_rebuilt_by_the_next(
        proj: Project, api: FakeApi, select: tuple[str, ...]) -> None:
    """FlowKit answers a PATCH with a new mdid and drops the old one's mappings. A run that
    left `maps` out (--exclude) moved the answers it reads; the next run, with or without
    `data`, rebuilds it first and maps the new mdid (its build predates the answers)."""
    proj.publish()
    proj.rows[0] = ("residents", "2020-01-01 00:00:00", 5)
    proj.build()
    proj.publish(exclude=["maps"])
    new_mdid = int(dict(proj.sql("SELECT category_id, answer FROM published.data"))[
        "residents"])
    proj.publish(dry_run=True, select=list(select))
    assert "a publish first rebuilds mapped (answers they read" in proj.err.getvalue()
    proj.err.seek(0)
    proj.err.truncate()
    runner.publication_status(proj.ctx())
    assert "a publish first rebuilds mapped (answers they read" in proj.err.getvalue()
    api.calls.clear()
    results = by_name(proj.publish(select=list(select)))
    assert api.data_calls() == [("POST", "/v1/scope_mapping",
                                 {"scope": "public", "mdid": new_mdid})]
    assert results["maps"].status == "success"
    assert "rebuilding mapped (answers they read were recorded since they were built)" in (
        proj.out.getvalue())
    api.calls.clear()
    proj.out.seek(0)
    proj.out.truncate()
    proj.publish(select=list(select))  # now current: nothing rebuilt, nothing sent
    assert api.data_calls() == [] and "rebuilding mapped" not in proj.out.getvalue()


MIRROR_DATA = ("    mode: upsert\n    body: payload\n",
               "    mode: mirror\n    body: payload\n    delete_body: payload\n")


def switch_data_to_mirror(proj: Project) -> None:
    pubs = proj.root / "models" / "publications.yml"
    text = pubs.read_text()
    assert MIRROR_DATA[0] in text
    pubs.write_text(text.replace(*MIRROR_DATA, 1))


def test_a_switch_to_mirror_records_delete_bodies_of_rows_sent_before(
        proj: Project, api: FakeApi) -> None:
    """#29 point 6: rows acknowledged in upsert mode had no delete body; after the switch a
    removed row went out as a bare-key DELETE (the real FlowKit answers 500, every run)."""
    assert not proj.publish().failed
    switch_data_to_mirror(proj)
    assert not proj.publish().failed  # nothing to send; the delete bodies are recorded
    assert proj.sql("SELECT count(*) FROM _elt.ledger WHERE publication = 'data' "
                    "AND tombstone IS NULL") == [(0,)]
    gone = proj.rows.pop(1)
    proj.build()
    api.calls.clear()
    assert not proj.publish().failed, proj.err.getvalue()
    assert [(m, p, b) for m, p, b in api.data_calls() if m == "DELETE"] == [
        ("DELETE", "/v1/data", payload(*gone))]  # the full dataset, not the bare key


def test_rows_gone_before_any_delete_body_was_recorded_are_refused_with_what_to_do(
        proj: Project, api: FakeApi) -> None:
    assert not proj.publish().failed
    switch_data_to_mirror(proj)
    proj.rows.pop(1)  # removed in the same step: no publish saw it in mirror mode
    proj.build()
    api.calls.clear()
    results = proj.publish(select=["data"])
    assert results.failed
    message = by_name(results)["data"].message
    assert ('1 row(s) gone from datasets (first: ["presence","2020-01-01 00:00:00"]) were '
            "acknowledged before data recorded delete bodies") in message, message
    assert "elt ledger forget -s data" in message
    assert not [c for c in api.data_calls() if c[0] == "DELETE"]  # no bare-key DELETE
