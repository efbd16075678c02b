"""target/manifest.json and run_results.json in dbt's shape (manifest v12, run-results v6),
read the way dbt-artifacts tooling reads them, with elt's own fields still there.

The required keys and value types below are those of dbt's published JSON schemas
(schemas.getdbt.com/dbt/manifest/v12.json, run-results/v6.json); elt adds fields of its
own beside them (dbt's schemas forbid extra keys, the one difference).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_build import make_ctx

from elt.core.results import unique_id

FILES = {
    "seeds/people.csv": "id,name,city_id\n1,ann,10\n2,bob,20\n3,cyd,99\n",
    "seeds/cities.csv": "id,city\n10,Oslo\n20,Rome\n",
    "models/staging/stg_people.sql": "/* elt\ndescription: People as exported.\n"
                                     "columns: {id: {description: The person., "
                                     "tests: [not_null, unique]}}\n*/\n"
                                     "SELECT * FROM raw.people",
    "models/staging/stg_cities.sql": "/* elt\nmaterialized: view\n*/\nSELECT * FROM raw.cities",
    "models/people_cities.sql": "/* elt\ntests:\n  - expression: \"city IS NOT NULL\"\n*/\n"
                                "SELECT p.id, c.city FROM stg_people AS p "
                                "LEFT JOIN stg_cities AS c ON c.id = p.city_id",
    "models/pubs.yml": "publications:\n  people_out: {model: people_cities, key: [id], "
                       "endpoint: api}\n",
}

MANIFEST_SECTIONS = ["metadata", "nodes", "sources", "macros", "docs", "exposures", "metrics",
                     "groups", "selectors", "disabled", "parent_map", "child_map", "group_map",
                     "saved_queries", "semantic_models", "unit_tests"]
MANIFEST_METADATA = {"dbt_schema_version", "dbt_version", "generated_at", "invocation_id",
                     "invocation_started_at", "env", "project_name", "project_id", "user_id",
                     "send_anonymous_usage_stats", "adapter_type", "quoting", "run_started_at"}
NODE_REQUIRED = {"database": (str, type(None)), "schema": str, "name": str,
                 "resource_type": str, "package_name": str, "path": str,
                 "original_file_path": str, "unique_id": str, "fqn": list, "alias": str,
                 "checksum": dict}
SOURCE_REQUIRED = {"database": (str, type(None)), "schema": str, "name": str,
                   "resource_type": str, "package_name": str, "path": str,
                   "original_file_path": str, "unique_id": str, "fqn": list,
                   "source_name": str, "source_description": str, "loader": str,
                   "identifier": str}
EXPOSURE_REQUIRED = {"name": str, "resource_type": str, "package_name": str, "path": str,
                     "original_file_path": str, "unique_id": str, "fqn": list, "type": str,
                     "owner": dict}
RESULT_REQUIRED = {"status": str, "timing": list, "thread_id": str,
                   "execution_time": (int, float), "adapter_response": dict,
                   "message": (str, type(None)), "failures": (int, type(None)),
                   "unique_id": str, "compiled": (bool, type(None)),
                   "compiled_code": (str, type(None)), "relation_name": (str, type(None))}
RUN_STATUSES = {"success", "error", "skipped", "partial success", "no-op"}
TEST_STATUSES = {"pass", "error", "fail", "warn", "skipped"}


def _has(entry: dict[str, Any], required: dict[str, Any], where: str) -> None:
    for key, kind in required.items():
        assert key in entry, f"{where}: no {key}"
        assert isinstance(entry[key], kind), f"{where}.{key}: {entry[key]!r}"


@pytest.fixture
def built(tmp_path: Path) -> Path:
    ctx, _ = make_ctx(tmp_path, FILES)
    run = ctx.build()
    assert {r.name: r.status for r in run.results}["expression_people_cities_city_is_not_null"] \
        == "error"  # cyd's city 99 is unknown: one failing row
    return tmp_path


def test_manifest_has_dbts_shape(built: Path) -> None:
    manifest = json.loads((built / "target" / "manifest.json").read_text())
    assert set(MANIFEST_SECTIONS) <= set(manifest)
    meta = manifest["metadata"]
    assert set(meta) <= MANIFEST_METADATA  # dbt allows no other key here
    assert meta["dbt_schema_version"] == "https://schemas.getdbt.com/dbt/manifest/v12.json"
    assert meta["project_name"] == "p" and meta["adapter_type"] == "duckdb"
    assert meta["invocation_id"] == manifest["invocation_id"]  # elt's header stays too
    for uid, node in manifest["nodes"].items():
        _has(node, NODE_REQUIRED, uid)
        assert node["unique_id"] == uid and uid.startswith(node["resource_type"] + ".p.")
        assert node["resource_type"] in {"model", "seed", "test"}
        assert set(node["checksum"]) == {"name", "checksum"}
        assert set(node["depends_on"]) == {"macros", "nodes"}
        assert node["config"]["enabled"] is True
    for uid, source in manifest["sources"].items():
        _has(source, SOURCE_REQUIRED, uid)
    for uid, exposure in manifest["exposures"].items():
        _has(exposure, EXPOSURE_REQUIRED, uid)
    model = manifest["nodes"]["model.p.stg_people"]
    assert model["original_file_path"] == "models/staging/stg_people.sql"
    assert model["path"] == "staging/stg_people.sql"
    assert model["fqn"] == ["p", "staging", "stg_people"]
    assert model["config"]["materialized"] == "table"
    assert model["columns"]["id"]["description"] == "The person."
    assert model["description"] == "People as exported."
    assert model["raw_code"].strip() == "SELECT * FROM raw.people"
    assert model["depends_on"]["nodes"] == ["seed.p.people"]
    assert manifest["nodes"]["model.p.stg_cities"]["config"]["materialized"] == "view"
    seed = manifest["nodes"]["seed.p.people"]
    assert seed["original_file_path"] == "seeds/people.csv" and seed["name"] == "people"
    # elt's own fields stay
    assert model["kind"] == "model" and model["relation"] == "main.stg_people"
    assert seed["elt"]["name"] == "raw.people" and seed["relation"] == "raw.people"
    published = manifest["sources"]["source.p.published.people_out"]
    assert published["source_name"] == "published" and published["identifier"] == "people_out"
    exposure = manifest["exposures"][unique_id("p", "publication", "people_out")]
    assert exposure["depends_on"]["nodes"] == ["model.p.people_cities"]


def test_a_dbt_artifacts_reader_walks_lineage_and_maps_results(built: Path) -> None:
    """What a lineage viewer or CI summary does with dbt's artifacts, on elt's."""
    manifest = json.loads((built / "target" / "manifest.json").read_text())
    run = json.loads((built / "target" / "run_results.json").read_text())
    assert {"metadata", "results", "elapsed_time"} <= set(run)
    assert run["metadata"]["dbt_schema_version"] == \
        "https://schemas.getdbt.com/dbt/run-results/v6.json"
    assert run["metadata"]["invocation_id"] == manifest["metadata"]["invocation_id"]
    assert isinstance(run["elapsed_time"], float)
    everything = {**manifest["nodes"], **manifest["sources"], **manifest["exposures"]}

    def upstream(uid: str) -> set[str]:
        seen: set[str] = set()
        stack = [uid]
        while stack:
            for parent in everything[stack.pop()].get("depends_on", {}).get("nodes", []):
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        return seen

    assert upstream("model.p.people_cities") == {"model.p.stg_people", "model.p.stg_cities",
                                                 "seed.p.people", "seed.p.cities"}
    assert upstream(unique_id("p", "publication", "people_out")) >= {"seed.p.people"}
    for child, parents in manifest["parent_map"].items():  # parent_map/child_map agree
        for parent in parents:
            assert child in manifest["child_map"][parent]
    by_status: dict[str, list[str]] = {}
    for result in run["results"]:
        _has(result, RESULT_REQUIRED, result["unique_id"])
        node = everything[result["unique_id"]]  # every result maps to a node
        statuses = TEST_STATUSES if node["resource_type"] == "test" else RUN_STATUSES
        assert result["status"] in statuses, result
        assert all("name" in t for t in result["timing"])
        by_status.setdefault(result["status"], []).append(node["name"])
        # elt's own fields stay
        assert result["name"] == node["elt"]["name"] and result["kind"] == node["kind"]
    assert by_status["fail"] == ["expression_people_cities_city_is_not_null"]
    failed = next(r for r in run["results"] if r["status"] == "fail")
    assert failed["failures"] == 1 and failed["elt_status"] == "error"
    test = manifest["nodes"][failed["unique_id"]]
    assert test["attached_node"] == "model.p.people_cities"
    assert set(by_status) == {"success", "pass", "fail"}
    seeded = next(r for r in run["results"] if r["unique_id"] == "seed.p.people")
    assert seeded["adapter_response"]["rows_affected"] == 3 and seeded["timing"][0]["name"] \
        == "execute"


def test_the_no_op_build_keeps_the_shape(built: Path) -> None:
    """A build answered from the stamp rewrites the header, dbt's metadata with it."""
    ctx, _ = make_ctx(built, {"models/people_cities.sql": FILES["models/people_cities.sql"]
                              .replace("LEFT JOIN", "JOIN")})  # the test passes now
    assert not ctx.build().failed
    before = json.loads((built / "target" / "manifest.json").read_text())
    assert all(r.status == "up_to_date" for r in ctx.build().results)  # from the stamp
    after = json.loads((built / "target" / "manifest.json").read_text())
    assert after["metadata"]["generated_at"] == after["generated_at"] > before["generated_at"]
    assert {**after["metadata"], "generated_at": None} == \
        {**before["metadata"], "generated_at": None}
    assert {k: v for k, v in after.items() if k not in ("metadata", "generated_at")} == \
        {k: v for k, v in before.items() if k not in ("metadata", "generated_at")}
