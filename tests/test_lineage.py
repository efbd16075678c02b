"""Column lineage (elt/lineage): from the body's JSON keys back to the seed columns."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import elt, write_files

PEOPLE = """\
person_id,first,last,mail,city_code
1, Ada ,Lovelace,ADA@X.ORG,LON
2,Alan,Turing,alan@x.org,MAN
"""
CITIES = "code,label\nLON,London\nMAN,Manchester\n"
REPO = Path(__file__).resolve().parents[1]
SCORES = "person_id,math,art,note\n1,90,70,x\n2,60,85,y\n"


def _project(root: Path) -> None:
    write_files(root, {
        "profiles.yml": """
            elt:
              target: dev
              outputs:
                dev:
                  type: duckdb
                  path: target/elt.duckdb
                  endpoints:
                    api: {url: "http://127.0.0.1:9/v1"}
        """,
        "seeds/people.csv": PEOPLE,
        "seeds/cities.csv": CITIES,
        "seeds/scores.csv": SCORES,
        # COLUMNS(* EXCLUDE ...) and DuckDB's UNPIVOT, which sqlglot cannot trace alone
        "models/stg_scores.sql": "SELECT COLUMNS(* EXCLUDE (note, _elt_source_file, _elt_load_id)) "
                                  "FROM raw.scores",
        "models/scores_long.sql": """
            SELECT ref, subject, score
            FROM (UNPIVOT (SELECT *, person_id * 10 AS ref FROM stg_scores)
                  ON COLUMNS(* EXCLUDE (person_id, ref)) INTO NAME subject VALUE score)
        """,
        "models/scores_api.sql": """
            SELECT ref || subject AS id,
                   json_object('person', ref, 'subject', subject, 'score', score) AS payload
            FROM scores_long
        """,
        # one model renames and cleans, the next builds the body: fields two models deep
        "models/stg_people.sql": """
            SELECT person_id AS id, trim(first) AS given_name, lower(trim(mail)) AS email,
                   city_code
            FROM raw.people
        """,
        "models/people_api.sql": """
            WITH located AS (
                SELECT p.*, c.label AS city FROM stg_people AS p
                JOIN raw.cities AS c ON c.code = p.city_code
            )
            SELECT id,
                   json_object('name', given_name, 'version', 'v1',
                               'contact', json_object('email', email, 'city', city)) AS payload,
                   '{"id":' || id || ',"tags":["' || city_code || '"]}' AS text_body,
                   given_name AS first_name
            FROM located
        """,
        "models/publications.yml": """
            publications:
              people:
                model: people_api
                endpoint: api
                kind: rest
                key: [id]
                body: payload
                rest: {insert: {method: POST, path: /people}, success: [201]}
              people_text:
                model: people_api
                endpoint: api
                kind: rest
                key: [id]
                body: text_body
                rest: {insert: {method: POST, path: /people}, success: [201]}
              scores:
                model: scores_api
                endpoint: api
                kind: rest
                key: [id]
                body: payload
                rest: {insert: {method: POST, path: /scores}, success: [201]}
              people_rows:
                model: people_api
                endpoint: api
                kind: rest
                key: [id]
                rest: {insert: {method: POST, path: /rows}, success: [201]}
        """,
    })


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lineage")
    _project(root)
    run = elt(root, "build")
    assert run.code == 0, run.output
    return root


@pytest.fixture(scope="module")
def flowkit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's own FlowKit + UOIS project, built offline (no API source asked)."""
    root = tmp_path_factory.mktemp("flowkit")
    for part in ("models", "seeds"):
        shutil.copytree(REPO / part, root / part)
    shutil.copy(REPO / "profiles.yml", root / "profiles.yml")
    run = elt(root, "build", "--exclude", "kind:api")
    assert run.code == 0, run.output
    return root


def _lineage(root: Path, *args: str) -> list[dict]:
    run = elt(root, "lineage", *args, "--format", "json")
    assert run.code == 0, run.output
    return json.loads(run.stdout)


def _field(doc: list[dict], name: str) -> dict:
    (found,) = [f for f in doc[0]["fields"] if f["field"] == name]
    return found


def _sources(field: dict) -> set[str]:
    return {f"{s['node']}.{s['column']}" for s in field["sources"]}


def test_json_key_inside_payload_two_models_deep(project: Path) -> None:
    doc = _lineage(project, "people.contact.email")
    email = _field(doc, "contact.email")
    assert _sources(email) == {"raw.people.mail"}
    (hop,) = email["inputs"]  # the chain: people_api -> stg_people.email -> raw.people.mail
    assert (hop["node"], hop["column"]) == ("stg_people", "email")
    assert "LOWER" in hop["expression"].upper()
    assert [(i["node"], i["column"]) for i in hop["inputs"]] == [("raw.people", "mail")]


def test_renamed_column_is_followed_to_its_seed_name(project: Path) -> None:
    doc = _lineage(project, "people.name")
    assert _sources(_field(doc, "name")) == {"raw.people.first"}
    rows = _lineage(project, "people_rows.first_name")  # the row is the body: columns
    assert _sources(_field(rows, "first_name")) == {"raw.people.first"}


def test_every_field_of_the_body_and_a_constant(project: Path) -> None:
    doc = _lineage(project, "people")
    names = [f["field"] for f in doc[0]["fields"]]
    assert names == ["name", "version", "contact.email", "contact.city"]
    assert _field(doc, "version")["sources"] == []
    assert _sources(_field(doc, "contact.city")) == {"raw.cities.label"}
    assert json.loads((project / "target" / "lineage.json").read_text()) == doc


def test_keys_of_a_payload_built_as_text(project: Path) -> None:
    doc = _lineage(project, "people_text")
    assert [f["field"] for f in doc[0]["fields"]] == ["id", "tags[]"]
    assert _sources(_field(doc, "tags[]")) == {"raw.people.city_code"}
    assert _sources(_field(doc, "id")) == {"raw.people.person_id"}


def test_through_unpivot_and_columns_star(project: Path) -> None:
    doc = _lineage(project, "scores")
    assert [f["field"] for f in doc[0]["fields"]] == ["person", "subject", "score"]
    # the unpivoted value comes from the listed columns (COLUMNS(* EXCLUDE ...) of a
    # SELECT * of a model that is itself COLUMNS(* EXCLUDE (note)) of the seed)
    assert _sources(_field(doc, "score")) == {"raw.scores.math", "raw.scores.art"}
    (hop,) = _field(doc, "score")["inputs"]
    assert (hop["node"], hop["column"]) == ("scores_long", "score")
    assert {(i["node"], i["column"]) for i in hop["inputs"]} == {
        ("stg_scores", "math"), ("stg_scores", "art")}
    # a column passed through the UNPIVOT from its inner SELECT, computed there
    assert _sources(_field(doc, "person")) == {"raw.scores.person_id"}
    # the NAME column holds the unpivoted columns' names: made (a constant) in scores_long
    assert _sources(_field(doc, "subject")) == {"scores_long.subject"}


def test_text_output_prints_the_chain(project: Path) -> None:
    run = elt(project, "lineage", "people.contact.email")
    assert run.code == 0, run.output
    lines = run.stdout.splitlines()
    assert lines[1].strip().startswith("people.contact.email = ")
    assert any("<- stg_people.email = LOWER" in line for line in lines)
    assert any("<- raw.people.mail  (seed)" in line for line in lines)
    assert lines[-1].strip() == "sources: raw.people.mail"


def test_unknown_field_names_the_close_one(project: Path) -> None:
    run = elt(project, "lineage", "people.contact.emial")
    assert run.code == 1
    assert "publication people has no field 'contact.emial' (did you mean " \
           "people.contact.email?)" in run.stderr
    assert "Traceback" not in run.output
    run = elt(project, "lineage", "peple.name")
    assert run.code == 1 and "unknown publication 'peple' (did you mean people?)" in run.stderr


def test_flowkit_and_uois_project_fields() -> None:
    """The repository's own project: a FlowKit dataset's keys, UOIS variables."""
    root = Path(__file__).resolve().parents[1]
    run = elt(root, "lineage", "flowkit_data", "--format", "json")
    assert run.code == 0, run.output
    fields = {f["field"] for f in json.loads(run.stdout)[0]["fields"]}
    assert {"metadata.revision", "metadata.category_id", "metadata.dt", "data_type",
            "data_input[]"} <= fields
    run = elt(root, "lineage", "uois_users.email", "--format", "json")
    assert run.code == 0, run.output
    assert _sources(_field(json.loads(run.stdout), "email")) == {"raw.systemdata_users.email"}


def test_flowkit_dataset_through_the_unpivot(flowkit: Path) -> None:
    """flowkit_values UNPIVOTs every indicator column of the exports: a data_input entry's
    value comes from those columns, its units from the unit columns, seed by seed."""
    doc = _lineage(flowkit, "flowkit_data.data_input")
    assert [f["field"] for f in doc[0]["fields"]] == ["data_input[].spatial_unit_ids",
                                                      "data_input[].data"]
    units = _sources(_field(doc, "data_input[].spatial_unit_ids"))
    assert units == {"raw.flowkit_residents.pcod", "raw.flowkit_presence.pcod",
                     "raw.flowkit_relocations.pcod_from", "raw.flowkit_relocations.pcod_to",
                     "raw.flowkit_movements.pcod_from", "raw.flowkit_movements.pcod_to"}
    data = _sources(_field(doc, "data_input[].data"))
    assert {"raw.flowkit_residents.residents", "raw.flowkit_residents.residents_perKm2",
            "raw.flowkit_movements.travellers", "raw.flowkit_presence.trips_in"} <= data
    assert all(s.startswith("raw.flowkit_") and not s.endswith(".*") for s in data)
    assert not {"raw.flowkit_residents.month", "raw.flowkit_residents.pcod"} & data  # the keys
