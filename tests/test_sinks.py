"""Sinks are pure: pin the exact bytes they encode and how they read answers."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from urllib.parse import quote_plus

import pytest

from elt.core.errors import PublishError
from elt.http.graphql import build_batched_document
from elt.http.messages import Request
from elt.publish.sinks import Row, make_sink
from elt.publish.sinks.base import Refused
from elt.publish.sinks.graphql import GraphQLSink
from elt.publish.sinks.rest import RestSink

DATASET = {"metadata": {"category_id": "residents", "indicator_id": "residents.residents",
                        "srid": 3, "trid": 2, "dt": "2020-02-01 00:00:00", "revision": "v1"},
           "data_type": "single_location",
           "data_input": [{"spatial_unit_ids": ["HT0111-01"], "data": 544650}]}

FLOWKIT = {
    "mode": "upsert",
    "batch_size": 1,
    "rest": {
        "insert": {"method": "POST", "path": "/data"},
        "update": {"method": "PATCH", "path": "/data"},
        "delete": {"method": "DELETE", "path": "/data"},
        "success": [201, 204],
        "already_there": [303],
        "compression": "gzip",
        "headers": {"X-Source": "elt"},
    },
}

USER_GQL = """mutation ($id: UUID!, $name: String!) {
  result: userInsert(user: {id: $id, name: $name}) { id msg result: user { id } }
}
"""


def row(key: str, body: object, op: str = "insert") -> Row:
    return Row(key=key, op=op, body=body, hash="h" + key)


def rest(config: dict | None = None, **extra: object) -> RestSink:
    return RestSink("flowkit_data", {**(config or FLOWKIT), **extra}, Path("."))


# -- REST ------------------------------------------------------------------------------
def test_rest_single_row_gzip_body_and_headers() -> None:
    [req] = rest().encode([row('["a"]', DATASET)])
    assert (req.method, req.path) == ("POST", "/data")
    assert req.headers == {"Content-Type": "application/json", "Content-Encoding": "gzip",
                           "X-Source": "elt"}
    assert json.loads(gzip.decompress(req.content)) == DATASET
    assert req.rows == (row('["a"]', DATASET),)


def test_gzip_levels_one_to_three_use_isal_and_higher_levels_zlib() -> None:
    """The sink's level picks the encoder; every body is one gzip member any reader takes,
    without a timestamp (equal bodies, equal bytes)."""
    igzip = pytest.importorskip("isal.igzip")
    sink = rest()
    body = json.dumps([DATASET] * 200, separators=(",", ":")).encode()
    for level in (1, 3, 6, 9):
        sink.gzip_level = level
        [req] = sink.encode([row('["a"]', [DATASET] * 200)])
        assert gzip.decompress(req.content) == body
        assert req.content == sink.encode([row('["a"]', [DATASET] * 200)])[0].content
        expected = (igzip.compress(body, level, mtime=0) if level <= 3
                    else gzip.compress(body, compresslevel=level, mtime=0))
        assert req.content == expected, level


def test_rest_ops_map_to_method_and_path() -> None:
    reqs = rest().encode([row("1", {"a": 1}), row("2", {"a": 2}, "update"),
                          row("3", {"a": 3}, "delete")])
    assert [(r.method, r.path) for r in reqs] == [("POST", "/data"), ("PATCH", "/data"),
                                                  ("DELETE", "/data")]
    assert [json.loads(gzip.decompress(r.content)) for r in reqs] == [{"a": 1}, {"a": 2},
                                                                       {"a": 3}]


def test_rest_plain_json_without_compression() -> None:
    config = {"rest": {**FLOWKIT["rest"], "compression": "none", "headers": {}}}
    [req] = rest(config).encode([row("1", {"x": "é"})])
    assert req.content == '{"x":"é"}'.encode()
    assert req.headers == {"Content-Type": "application/json"}


def test_rest_batches_are_json_arrays_grouped_by_op() -> None:
    config = {"batch_size": 2, "rest": {"insert": {"method": "POST", "path": "/items"},
                                        "update": {"method": "PUT", "path": "items"}}}
    rows = [row("1", {"i": 1}), row("2", {"i": 2}, "update"), row("3", {"i": 3}),
            row("4", {"i": 4})]
    reqs = rest(config).encode(rows)
    assert [(r.method, r.path, json.loads(r.content)) for r in reqs] == [
        ("POST", "/items", [{"i": 1}, {"i": 3}]),
        ("POST", "/items", [{"i": 4}]),
        ("PUT", "/items", [{"i": 2}]),
    ]
    assert [k.key for k in reqs[0].rows] == ["1", "3"]


def test_rest_ndjson_batch() -> None:
    config = {"batch_size": 5, "rest": {"insert": {"path": "/bulk"}, "format": "ndjson"}}
    [req] = rest(config).encode([row("1", {"i": 1}), row("2", {"i": 2})])
    assert req.content == b'{"i":1}\n{"i":2}\n'
    assert req.headers["Content-Type"] == "application/x-ndjson"


def test_rest_accepts_flattened_sub_config() -> None:
    """spec.Publication.sink_config() hands the `rest:` mapping itself plus batch_size."""
    sink = make_sink("p", "rest", {**FLOWKIT["rest"], "batch_size": 1}, Path("."))
    [req] = sink.encode([row("1", {"a": 1}, "delete")])
    assert (req.method, req.path, req.headers["X-Source"]) == ("DELETE", "/data", "elt")


def test_rest_missing_delete_config_fails_at_construction() -> None:
    config = {"mode": "mirror", "rest": {"update": {"method": "PATCH", "path": "/data"}}}
    with pytest.raises(PublishError, match="publication flowkit_data: .*rest.delete"):
        rest(config)
    with pytest.raises(PublishError, match="rest.update"):
        rest({"mode": "upsert", "rest": {}})
    with pytest.raises(PublishError, match="op 'delete' has no `rest.delete`"):
        rest({"rest": {}}).encode([row("1", {}, "delete")])


def test_rest_interpret_success_already_there_and_failure() -> None:
    sink = rest()
    [req] = sink.encode([row('["k"]', DATASET)])
    [ok] = sink.interpret(req, 201, b"17")
    assert (ok.key, ok.status, ok.http_status, ok.answer, ok.op) == (
        '["k"]', "acknowledged", 201, "17", "insert")
    [there] = sink.interpret(req, 303, b"8\n")
    assert (there.status, there.answer) == ("already_there", "8")
    [bad] = sink.interpret(req, 400, b'"No data to ingest"')
    assert (bad.status, bad.http_status, bad.answer) == ("failed", 400, "No data to ingest")
    [redirect] = sink.interpret(req, 302, b"")
    assert (redirect.status, redirect.answer) == ("failed", "HTTP 302")
    [long] = sink.interpret(req, 500, b"x" * 5000)
    assert long.status == "failed" and len(long.answer) <= 500
    [missing] = sink.interpret(req, 404, b'"Dataset not found"')  # an insert: failed
    assert missing.status == "failed"
    [update] = sink.encode([row('["k"]', DATASET, "update")])
    [gone] = sink.interpret(update, 404, b'"Dataset not found"')  # an update: not there
    assert (gone.status, gone.http_status, gone.op) == ("not_there", 404, "update")
    [gone] = rest(rest={**FLOWKIT["rest"], "not_found": [410]}).interpret(update, 404, b"")
    assert gone.status == "failed"


def test_rest_paths_are_built_from_the_row_url_encoded() -> None:
    """`PUT /items/{id}?upsert=true`: the column's value as one encoded segment, the query
    string as written; a NULL value is that row's error, the other rows still go."""
    sink = rest({"rest": {"insert": {"method": "PUT", "path": "/items/{id}?upsert=true"}}})
    good = Row(key='["a/b c"]', op="insert", body={"id": "a/b c"}, hash="h",
               values={"id": "a/b c"})
    null = Row(key='["n"]', op="insert", body={"id": None}, hash="h", values={"id": None})
    sent, refused = sink.encode([good, null])
    assert (sent.method, sent.path) == ("PUT", "/items/a%2Fb%20c?upsert=true")
    assert json.loads(sent.content) == {"id": "a/b c"}
    assert refused.reason == "rest.insert: cannot build /items/{id}?upsert=true: column 'id' " \
        "is NULL or missing"


def test_rest_header_values_from_the_row_must_be_one_ascii_line() -> None:
    """A row's value that HTTP cannot carry in a header (non-ASCII, a line break that would
    start another header) fails that row alone, unsent."""
    sink = rest({"rest": {"insert": {"path": "/items", "headers": {"X-Sku": "{sku}"}}}})
    rows = [Row(key=f'["{k}"]', op="insert", body={}, hash="h", values={"sku": v})
            for k, v in (("a", "plain"), ("b", "ü"), ("c", "x\r\nX-Admin: yes"))]
    sent, *refused = sink.encode(rows)
    assert sent.headers["X-Sku"] == "plain" and not isinstance(sent, Refused)
    assert [r.reason for r in refused] == ["rest.insert: header X-Sku cannot carry the row's "
                                           "value: it is not ASCII on one line (encode it in "
                                           "the model, e.g. url_encode)"] * 2


def test_rest_templated_paths_refuse_batches_at_load_time() -> None:
    with pytest.raises(PublishError, match=r"rest.update names row columns \(id\): such ops go "
                                           r"one row per request, so batch_size must be 1 or "
                                           r"absent, not 3"):
        rest(rest={**FLOWKIT["rest"], "update": {"method": "PATCH", "path": "/items/{id}"}},
             batch_size=3)


def test_rest_batch_outcomes_apply_to_every_row() -> None:
    sink = rest({"batch_size": 3, "rest": {"insert": {"path": "/b"}, "success": [200]}})
    [req] = sink.encode([row("1", {}), row("2", {}), row("3", {})])
    failed = sink.interpret(req, 500, b"Internal Server Error")
    assert [(o.key, o.status, o.answer) for o in failed] == [
        (k, "failed", "Internal Server Error") for k in ("1", "2", "3")]
    ids = sink.interpret(req, 200, b"[10, 11, 12]")
    assert [o.answer for o in ids] == ["10", "11", "12"]
    same = sink.interpret(req, 200, b'{"ok":true}')
    assert [o.answer for o in same] == ['{"ok":true}'] * 3


def test_make_sink_unknown_kind() -> None:
    with pytest.raises(PublishError, match="publication p: unknown kind 'soap'.*graphql, rest"):
        make_sink("p", "soap", {}, Path("."))


# -- GraphQL -----------------------------------------------------------------------------
GQL_CONFIG = {"graphql": {"document": "user_insert.gql", "result": "msg", "success": "ok",
                          "already_there": ["fail"], "answer": "id"}}


@pytest.fixture
def gql_dir(tmp_path: Path) -> Path:
    (tmp_path / "user_insert.gql").write_text(USER_GQL)
    return tmp_path


def gql(base: Path, batch_size: int = 1, **graphql: object) -> GraphQLSink:
    config = {"batch_size": batch_size, "graphql": {**GQL_CONFIG["graphql"], **graphql}}
    return GraphQLSink("uois_users", config, base)


def answer(payload: object) -> bytes:
    return json.dumps(payload).encode()


def test_build_batched_document_text_and_variables() -> None:
    text, mapper = build_batched_document(USER_GQL, 2)
    assert text == (
        "mutation ($id_0: UUID!, $name_0: String!, $id_1: UUID!, $name_1: String!) {\n"
        "  r0: userInsert(user: { id: $id_0, name: $name_0 }) {\n"
        "    id\n    msg\n    result: user {\n      id\n    }\n  }\n"
        "  r1: userInsert(user: { id: $id_1, name: $name_1 }) {\n"
        "    id\n    msg\n    result: user {\n      id\n    }\n  }\n"
        "}")
    assert mapper([{"id": "u1", "name": "A", "extra": 1}, {"id": "u2"}]) == {
        "id_0": "u1", "name_0": "A", "id_1": "u2"}


def test_graphql_single_row_sends_the_document_as_is(gql_dir: Path) -> None:
    [req] = gql(gql_dir).encode([row('["u1"]', {"id": "u1", "name": "A", "email": "x"})])
    assert (req.method, req.path, req.headers) == ("POST", "", {"Content-Type":
                                                                 "application/json"})
    assert json.loads(req.content) == {"query": USER_GQL, "variables": {"id": "u1", "name": "A"}}


def test_graphql_batch_encodes_one_document_never_gzip(gql_dir: Path) -> None:
    rows = [row(str(i), {"id": f"u{i}", "name": f"N{i}"}) for i in range(5)]
    reqs = gql(gql_dir, batch_size=2).encode(rows)
    assert [len(r.rows) for r in reqs] == [2, 2, 1]
    for r in reqs:
        assert "Content-Encoding" not in r.headers
        assert r.content.startswith(b'{"query":')  # plain JSON, not gzip magic
    body = json.loads(reqs[1].content)
    assert body["variables"] == {"id_0": "u2", "name_0": "N2", "id_1": "u3", "name_1": "N3"}
    assert "r1: userInsert" in body["query"]
    last = json.loads(reqs[2].content)
    assert "r1:" not in last["query"] and last["variables"] == {"id_0": "u4", "name_0": "N4"}
    with pytest.raises(PublishError, match="never compressed"):
        gql(gql_dir, compression="gzip")


def test_graphql_errors_map_to_rows_by_path(gql_dir: Path) -> None:
    sink = gql(gql_dir, batch_size=3)
    [req] = sink.encode([row(k, {"id": k, "name": k}) for k in ("a", "b", "c")])
    payload = {"data": {"r0": {"id": "a", "msg": "ok"}, "r1": None,
                        "r2": {"id": "c-old", "msg": "fail"}},
               "errors": [{"msg": "UniqueViolation: key (id)=(b)", "path": ["r1"]}]}
    out = sink.interpret(req, 200, answer(payload))
    assert [(o.key, o.status, o.answer) for o in out] == [
        ("a", "acknowledged", "a"),
        ("b", "failed", "UniqueViolation: key (id)=(b)"),
        ("c", "already_there", "c-old"),  # msg "fail" = already there: kept apart
    ]
    assert {o.http_status for o in out} == {200}
    two = {"data": {"r0": None, "r1": None, "r2": {"id": "c", "msg": "ok"}},
           "errors": [{"message": "A", "path": ["r0", "id"]}, {"message": "B", "path": ["r1"]}]}
    out = sink.interpret(req, 200, answer(two))
    assert [(o.status, o.answer) for o in out] == [("failed", "A"), ("failed", "B"),
                                                    ("acknowledged", "c")]


def test_graphql_errors_without_path_fail_rows_without_data(gql_dir: Path) -> None:
    sink = gql(gql_dir, batch_size=2)
    [req] = sink.encode([row("a", {"id": "a"}), row("b", {"id": "b"})])
    payload = {"data": {"r0": {"id": "a", "msg": "ok"}, "r1": None},
               "errors": [{"message": "ForeignKeyViolation"}]}
    out = sink.interpret(req, 200, answer(payload))
    assert [(o.status, o.answer) for o in out] == [("acknowledged", "a"),
                                                    ("failed", "ForeignKeyViolation")]
    single = gql(gql_dir)
    [req1] = single.encode([row("a", {"id": "a"})])
    [o] = single.interpret(req1, 200, answer({"data": None,
                                              "errors": [{"message": "UniqueViolation"}]}))
    assert (o.status, o.answer) == ("failed", "UniqueViolation")


def test_graphql_error_without_path_leaves_open_rows_unresolved(gql_dir: Path) -> None:
    """Real gql_ug: `data: null`, one error, no path; earlier fields may be committed."""
    sink = gql(gql_dir, batch_size=3)
    [req] = sink.encode([row(k, {"id": k}) for k in ("a", "b", "c")])
    out = sink.interpret(req, 200, answer({"data": None, "errors": [{"msg": "FK violation"}]}))
    assert [(o.key, o.status) for o in out] == [("a", "unresolved"), ("b", "unresolved"),
                                                ("c", "unresolved")]


def test_graphql_error_without_path_naming_a_key_fails_that_row(gql_dir: Path) -> None:
    """gql_ug stopped at the row whose key the database error names: the rows before it were
    committed (resent, maybe ours), it failed (already there when declared), the rows after
    it were not run (resent as they were: an "already exists" for them is not ours)."""
    rows = [row(k, {"id": f"ID-{k}", "group": "g"}) for k in ("a", "b", "c", "d")]
    dup = {"data": None, "errors": [{"msg": "UniqueViolationError: duplicate key\nDETAIL:  "
                                            "Key (id)=(id-b) already exists.\n[SQL: ...]"}]}
    for sink, state in ((gql(gql_dir, batch_size=4), "failed"),
                        (gql(gql_dir, batch_size=4, already_there_errors=["UniqueViolation"]),
                         "already_there")):
        [req] = sink.encode(rows)
        out = sink.interpret(req, 200, answer(dup))
        assert [(o.key, o.status) for o in out] == [
            ("a", "unresolved"), ("b", state), ("c", "not_run"), ("d", "not_run")]
    sink = gql(gql_dir, batch_size=4)
    [req] = sink.encode(rows)
    fk = {"data": None, "errors": [{"msg": "ForeignKeyViolationError\nDETAIL:  Key (group)="
                                           "(g) is not present in table \"groups\"."}]}
    out = sink.interpret(req, 200, answer(fk))  # the first row naming the missing key failed
    assert [o.status for o in out] == ["failed", "not_run", "not_run", "not_run"]
    other = {"data": None, "errors": [{"msg": "DETAIL:  Key (id)=(nobody) already exists."}]}
    out = sink.interpret(req, 200, answer(other))  # names no row of the request
    assert {o.status for o in out} == {"unresolved"}


def test_rows_not_run_by_a_repeated_request_may_be_an_earlier_copys(gql_dir: Path) -> None:
    """A batch sent again after an attempt that may have been processed stops at its first
    row (the earlier copy committed it): the rows after it may be that copy's too, so they
    go again flagged as maybe delivered, and their "already exists" is ours."""
    from elt.publish.stream import follow_ups, settle

    sink = gql(gql_dir, batch_size=3)
    rows = [row(k, {"id": f"ID-{k}"}) for k in ("a", "b", "c")]
    [req] = sink.encode(rows)
    dup = answer({"data": None, "errors": [{"msg": "UniqueViolationError\nDETAIL:  Key (id)="
                                                    "(id-a) already exists."}]})
    for repeated, flagged in ((False, False), (True, True)):
        settled = settle(sink, req, 200, dup, None, repeated=repeated)
        assert settled[0][1] == ("acknowledged" if repeated else "failed")
        final, again = follow_ups(sink, settled)
        assert [r.key for r in again] == ["b", "c"]
        assert {r.retry_of_unknown for r in again} == {flagged}


def test_graphql_an_answer_echoing_the_variables_is_recorded_without_them(
        gql_dir: Path) -> None:
    sink = gql(gql_dir)
    [req] = sink.encode([row("a", {"id": "a", "name": "ann@mail.test"})])
    echo = {"data": None, "errors": ["Unauthenticated", USER_GQL,
                                     {"id": "a", "name": "ann@mail.test"}]}
    [o] = sink.interpret(req, 401, answer(echo))
    assert o.status == "failed" and o.answer is not None
    assert "ann@mail.test" not in o.answer and "Unauthenticated" in o.answer
    assert "<the request's variables>" in o.answer
    [o] = sink.interpret(req, 500, b"Internal Server Error")  # other answers as they are
    assert o.answer == "Internal Server Error"


def test_graphql_declared_errors_mean_already_there(gql_dir: Path) -> None:
    sink = gql(gql_dir, already_there_errors=["UniqueViolation"])
    [req] = sink.encode([row("a", {"id": "a"})])
    dup = {"data": None, "errors": [{"msg": "UniqueViolationError: Key (id)=(a) already exists"}]}
    [o] = sink.interpret(req, 200, answer(dup))
    assert (o.status, o.answer) == ("already_there", None)  # the text carries SQL parameters
    [o] = sink.interpret(req, 200, answer({"data": None, "errors": [{"msg": "FK violation"}]}))
    assert o.status == "failed"


def test_graphql_result_values_and_design_style_paths(gql_dir: Path) -> None:
    sink = gql(gql_dir, result="result.msg", answer="result.id")  # DESIGN.md spelling
    [req] = sink.encode([row("a", {"id": "a"})])
    ok = {"data": {"result": {"id": "a", "msg": "ok", "result": {"id": "a"}}}}
    assert sink.interpret(req, 200, answer(ok))[0].answer == "a"
    there = {"data": {"result": {"id": "old", "msg": "fail", "result": None}}}
    [o] = sink.interpret(req, 200, answer(there))
    assert (o.status, o.answer) == ("already_there", "old")
    [o] = sink.interpret(req, 200, answer({"data": {"result": {"id": "a", "msg": "denied"}}}))
    assert (o.status, o.answer) == ("failed", "denied")


def test_graphql_http_errors_fail_every_row(gql_dir: Path) -> None:
    sink = gql(gql_dir, batch_size=2)
    [req] = sink.encode([row("a", {"id": "a"}), row("b", {"id": "b"})])
    body = b'{"data": null, "errors": ["Unauthenticated"]}'
    out = sink.interpret(req, 401, body)
    assert [(o.status, o.http_status) for o in out] == [("failed", 401)] * 2
    assert "Unauthenticated" in out[0].answer
    out = sink.interpret(req, 200, b"<html>proxy</html>")
    assert [o.status for o in out] == ["failed", "failed"]


def test_graphql_broken_document_names_file_line_col(tmp_path: Path) -> None:
    (tmp_path / "bad.gql").write_text("mutation ($id: UUID!) {\n  result: userInsert(id: $id\n")
    with pytest.raises(PublishError) as err:
        GraphQLSink("p", {"graphql": {"document": "bad.gql"}}, tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'bad.gql'}:3:1: GraphQL syntax error:")
    with pytest.raises(PublishError, match="missing.gql: cannot read GraphQL document"):
        GraphQLSink("p", {"graphql": {"document": "missing.gql"}}, tmp_path)
    (tmp_path / "two.gql").write_text("query { a } query { b }")
    with pytest.raises(PublishError, match="exactly one operation"):
        GraphQLSink("p", {"graphql": {"document": "two.gql"}}, tmp_path)


def test_graphql_row_body_must_be_an_object(gql_dir: Path) -> None:
    with pytest.raises(PublishError, match=r"row \[1\]: the body must be a JSON object"):
        gql(gql_dir).encode([row("[1]", [1, 2])])


def test_request_is_the_runner_interface() -> None:
    req = Request("POST", "/x", b"{}", {}, ())
    assert (req.method, req.path, req.content, req.rows) == ("POST", "/x", b"{}", ())


ECHOES = {  # how servers echo a request's variables in an error answer
    "python_repr": lambda v: json.dumps(
        {"errors": ["Unauthenticated", f"{{'id_0': UUID('{v['id']}'), 'email_0': "
                                       f"'{v['name']}'}}"]}),
    "json_inside_text": lambda v: json.dumps({"detail": f"bad input {json.dumps(v)}"}),
    "url_encoded": lambda v: f"rejected ?email={quote_plus(v['name'])}&id={v['id']}",
    "truncated": lambda v: f"error echoing {{'email_0': '{v['name'][:9]}...",
    "plain": lambda v: f"<html>no access for {v['name']}</html>",
}


@pytest.mark.parametrize("encoding", sorted(ECHOES))
def test_graphql_an_echo_in_any_encoding_is_not_stored(gql_dir: Path, encoding: str) -> None:
    sink = gql(gql_dir)
    variables = {"id": "5b0e3f5e-93aa-4bd3-a8bd-0c4fdc53f0a1", "name": "zoë.o'hara@mail.test"}
    [req] = sink.encode([row("a", variables)])
    body = ECHOES[encoding](variables).encode()
    [o] = sink.interpret(req, 401, body)
    assert o.status == "failed" and o.answer
    for leaked in ("zoë", "o'hara", "o\\'hara", "hara%40mail", "5b0e3f5e-93aa", "zo%C3%AB"):
        assert leaked not in o.answer, (encoding, o.answer)
    assert "<sent>" in o.answer
