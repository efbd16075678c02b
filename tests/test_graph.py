"""Graph: dependency inference with sqlglot, config parsing, errors and selection."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import elt
from test_build import make_ctx, write

from elt.context import Context
from elt.core.errors import ConfigError, EltError, ModelError
from elt.graph.dag import Graph
from elt.graph.discover import discover_graph as load_graph
from elt.project.config import Project
from elt.project.modelfile import project_yaml
from elt.publish.spec import Publication
from elt.publish.spec import select as select_pubs

SEEDS = {
    "seeds/people.csv": "id,name,city_id\n1,ann,10\n",
    "seeds/cities.csv": "id,city\n10,Oslo\n",
}


def graph_of(root: Path, files: dict[str, str | None]) -> Graph:
    ctx, _ = make_ctx(root, {**SEEDS, **files})
    return load_graph(ctx.project)


def error_of(root: Path, files: dict[str, str | None]) -> str:
    with pytest.raises(EltError) as info:
        graph_of(root, files)
    return str(info.value)


def test_dependencies_from_sql(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, {
        "models/stg/stg_people.sql": "SELECT * FROM raw.people",
        "models/stg/stg_cities.sql": "SELECT * FROM main.people_x",  # unknown for now
        "models/stg/people_x.sql": "SELECT id FROM raw.people UNION ALL SELECT 2",
        "models/mart.sql": """
            -- CTEs shadow nothing and are not dependencies; subqueries and joins are
            WITH stg_cities AS (SELECT * FROM raw.cities), x AS (SELECT * FROM stg_cities)
            SELECT p.*, (SELECT max(id) FROM stg_people) AS m, r.y
            FROM x JOIN people_x AS p ON p.id = x.id
            LEFT JOIN (SELECT 1 AS y FROM published.sent) AS r ON true, range(3) AS t(z)
            WHERE p.id IN (SELECT id FROM raw.people)
            """,
        "models/pubs.yml": "publications:\n  sent: {model: stg_people, key: [id]}\n",
    })
    assert graph.nodes["mart"].depends_on == ["people_x", "published.sent", "raw.cities",
                                              "raw.people", "stg_people"]
    assert graph.nodes["stg_cities"].depends_on == ["people_x"]
    assert graph.nodes["published.sent"].kind == "published"
    assert graph.nodes["published.sent"].depends_on == []
    assert graph.nodes["raw.people"].kind == "seed"
    assert graph.nodes["raw.people"].relation == "raw.people"
    order = graph.order
    assert order.index("people_x") < order.index("stg_cities")
    assert order.index("stg_people") < order.index("mart")
    assert graph.downstream("raw.people") == {"stg_people", "people_x", "stg_cities", "mart"}
    assert graph.upstream("stg_cities") == {"people_x", "raw.people"}


def test_unknown_table_with_hint(tmp_path: Path) -> None:
    message = error_of(tmp_path, {"models/a.sql": "SELECT * FROM raw.peple"})
    assert "model a: unknown table raw.peple (did you mean raw.people?)" in message
    assert message.startswith("models/a.sql:")
    message = error_of(tmp_path, {"models/a.sql": "SELECT * FROM people",
                                  "models/peoples.sql": "SELECT 1 AS x"})
    assert "unknown table people (did you mean peoples?)" in message


def test_cycle_is_listed(tmp_path: Path) -> None:
    message = error_of(tmp_path, {"models/a.sql": "SELECT * FROM b",
                                  "models/b.sql": "SELECT * FROM c",
                                  "models/c.sql": "SELECT * FROM a",
                                  "models/d.sql": "SELECT * FROM a"})
    assert "dependency cycle: a -> b -> c -> a" in message or \
        "dependency cycle: a -> c -> b -> a" in message


def test_duplicate_names_name_both_paths(tmp_path: Path) -> None:
    message = error_of(tmp_path, {"models/x/m.sql": "SELECT 1 AS a",
                                  "models/y/m.sql": "SELECT 2 AS a"})
    assert "duplicate name 'm'" in message
    assert "models/x/m.sql" in message and "models/y/m.sql" in message


def test_syntax_error_names_model_and_line(tmp_path: Path) -> None:
    message = error_of(tmp_path, {"models/bad.sql": "/* elt\ntags: [x]\n*/\nSELECT a\nFROM\n"})
    assert message == ("models/bad.sql:5: model bad: SQL syntax error: Expected table name "
                       "but got end of input")
    message = error_of(tmp_path, {"models/bad.sql": None, "models/two.sql": "SELECT 1; SELECT 2"})
    assert "model two: expected exactly one SELECT statement, found 2" in message
    message = error_of(tmp_path, {"models/two.sql": None,
                                  "models/ddl.sql": "DELETE FROM raw.people"})
    assert "model ddl: must be a SELECT" in message


def test_header_and_sidecar_config(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, {
        "models/h.sql": "/* elt\nmaterialized: view\ntags: [core]\n*/\nSELECT 1 AS a",
        "models/s.sql": "SELECT 1 AS a",
        "models/s.yml": "materialized: incremental\nunique_key: a\ndescription: side\n",
    })
    assert graph.nodes["h"].materialized == "view" and graph.nodes["h"].tags == ["core"]
    assert graph.nodes["s"].materialized == "incremental"
    assert graph.nodes["s"].unique_key == ["a"] and graph.nodes["s"].description == "side"
    assert graph.nodes["h"].sql.count("\n") == 4  # header lines kept blank: lines still match
    assert [p for p, _ in project_yaml(load_ctx(tmp_path))] == []  # s.yml is a sidecar


def load_ctx(root: Path) -> Project:
    ctx, _ = make_ctx(root)
    return ctx.project


def test_config_errors(tmp_path: Path) -> None:
    both = error_of(tmp_path, {"models/m.sql": "/* elt\ntags: [a]\n*/\nSELECT 1 AS a",
                               "models/m.yml": "tags: [b]\n"})
    assert "config given twice" in both and "models/m.yml" in both
    write_none = {"models/m.yml": None}
    bad_yaml = error_of(tmp_path, {**write_none,
                                   "models/m.sql": "/* elt\ntags: [a]\nmaterialized: [x\n*/\n"
                                                   "SELECT 1 AS a"})
    assert bad_yaml.startswith("models/m.sql:4: invalid YAML")
    unknown = error_of(tmp_path, {"models/m.sql": "/* elt\nmaterialised: view\n*/\nSELECT 1"})
    assert "model m: unknown config key(s) materialised; did you mean materialized?" in unknown
    test = error_of(tmp_path, {"models/m.sql": "SELECT 1 AS a",
                               "models/t.test.sql": "/* elt\nseverty: warn\n*/\nSELECT * FROM m"})
    assert "test t: unknown config key(s) severty; did you mean severity?" in test
    make_ctx(tmp_path, {"models/t.test.sql": None})
    inc = error_of(tmp_path, {"models/m.sql": "/* elt\nmaterialized: incremental\n*/\nSELECT 1"})
    assert "model m: materialized: incremental needs a unique_key" in inc
    side = error_of(tmp_path, {"models/m.sql": "SELECT 1 AS a",
                               "models/m.yml": "tags: [a\n"})
    assert side.startswith("models/m.yml:") and "invalid YAML" in side


def test_project_yaml_sections(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, {
        "models/ids.sql": "SELECT id FROM raw.people",
        "models/lookups.sql": "SELECT * FROM raw.geo",
        "models/sources.yml": """
            api_sources:
              geo: {endpoint: x, for_each: {model: ids, columns: [id]}}
            publications:
              people_out: {model: main.ids, key: [id]}
            """,
    })
    api = graph.nodes["raw.geo"]
    assert api.kind == "api" and api.depends_on == ["ids"] and api.relation == "raw.geo"
    assert graph.nodes["lookups"].depends_on == ["raw.geo"]
    assert len(api.checksum) == 16
    docs = project_yaml(load_ctx(tmp_path))
    assert [p.name for p, _ in docs] == ["sources.yml"]
    assert "people_out" in docs[0][1]["publications"]
    bad = error_of(tmp_path, {"models/sources.yml": "publications:\n  p: {model: idz, key: id}\n",
                              "models/lookups.sql": None})
    assert "publication p: unknown model idz (did you mean ids?)" in bad
    keyless = error_of(tmp_path, {"models/sources.yml": "publications:\n  p: {model: ids}\n"})
    assert "publication p: `key:` is required" in keyless
    typo = error_of(tmp_path, {"models/sources.yml": "publication:\n  p: {model: ids}\n"})
    assert "unknown top-level key(s) publication" in typo


def test_tests_are_nodes(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, {
        "models/flowkit_datasets.sql": """
            /* elt
            columns:
              category_id: {tests: [not_null]}
            tests:
              - unique: [category_id, indicator_id]
            */
            SELECT 1 AS category_id, 2 AS indicator_id
            """,
        "models/after.sql": "SELECT * FROM flowkit_datasets",
        "models/checks/no_neg.test.sql": "SELECT * FROM flowkit_datasets WHERE category_id < 0",
    })
    names = {n for n, node in graph.nodes.items() if node.kind == "test"}
    assert names == {"unique_flowkit_datasets_category_id__indicator_id",
                     "not_null_flowkit_datasets_category_id", "no_neg"}
    assert graph.nodes["no_neg"].owner == "flowkit_datasets"
    assert set(graph.tests_of["flowkit_datasets"]) == names
    # a model reading a tested model waits for (and is blocked by) those tests
    assert set(graph.run_after("after")) == {"flowkit_datasets", *names}


def test_a_test_over_several_models_guards_what_reads_them_all(tmp_path: Path) -> None:
    graph = graph_of(tmp_path, {
        "models/a.sql": "SELECT 1 AS id",
        "models/b.sql": "SELECT 1 AS id",
        "models/only_a.sql": "SELECT * FROM a",
        "models/both.sql": "SELECT * FROM a JOIN b USING (id)",
        "models/later.sql": "SELECT * FROM only_a JOIN b USING (id)",
        "models/after_both.sql": "SELECT * FROM both",
        "models/checks/a_in_b.test.sql": "SELECT * FROM a ANTI JOIN b USING (id)",
        "models/checks/reads_both.test.sql": "SELECT * FROM a ANTI JOIN both USING (id)",
    })
    assert graph.nodes["a_in_b"].owner is None
    assert "a_in_b" in graph.run_after("both")
    assert "a_in_b" in graph.run_after("later")       # has a and b upstream, reads b
    assert "a_in_b" not in graph.run_after("only_a")   # lacks b
    assert "a_in_b" not in graph.run_after("after_both")  # blocked through `both`
    # a test reading a model is never run after it: no cycle
    assert "reads_both" not in graph.run_after("both")


@pytest.fixture
def sel(tmp_path: Path) -> Graph:
    return graph_of(tmp_path, {
        "models/stg/stg_people.sql": "/* elt\ntags: [core]\n*/\nSELECT * FROM raw.people",
        "models/stg/stg_cities.sql": "/* elt\nmaterialized: view\n*/\nSELECT * FROM raw.cities",
        "models/mart/joined.sql": "SELECT * FROM stg_people, stg_cities",
        "models/mart/top.sql": "SELECT * FROM joined",
    })


ALL = ["raw.cities", "raw.people", "stg_cities", "stg_people", "joined", "top"]


@pytest.mark.parametrize(("select", "exclude", "expected"), [
    (["joined"], [], ["joined"]),
    (["joined+"], [], ["joined", "top"]),
    (["+joined"], [], ["raw.cities", "raw.people", "stg_cities", "stg_people", "joined"]),
    (["+stg_people+"], [], ["raw.people", "stg_people", "joined", "top"]),
    (["tag:core"], [], ["stg_people"]),
    (["path:models/stg"], [], ["stg_cities", "stg_people"]),
    (["path:seeds/people.csv"], [], ["raw.people"]),
    (["kind:seed"], [], ["raw.cities", "raw.people"]),
    (["people"], [], ["raw.people"]),                      # seed by its short name
    (["stg_*"], ["stg_cities"], ["stg_people"]),
    (["stg_people+,path:models/mart"], [], ["joined", "top"]),  # comma: intersection
    (["stg_people joined"], [], ["stg_people", "joined"]),      # space: union
    ([], ["kind:seed", "path:models/stg"], ["joined", "top"]),
    # dbt's forms
    (["@stg_people"], [], ALL),             # + every ancestor of its descendants: stg_cities
    (["+stg_people+"], ["raw.people"], ["stg_people", "joined", "top"]),
    (["1+joined"], [], ["stg_cities", "stg_people", "joined"]),
    (["2+top"], [], ["stg_cities", "stg_people", "joined", "top"]),
    (["stg_people+1"], [], ["stg_people", "joined"]),
    (["1+joined+1"], [], ["stg_cities", "stg_people", "joined", "top"]),
    (["config.materialized:view"], [], ["stg_cities"]),
    (["config.materialized:table,path:models/mart"], [], ["joined", "top"]),
    (["config.tags:core"], [], ["stg_people"]),
    (["resource_type:seed"], [], ["raw.cities", "raw.people"]),
    (["file:top.sql"], [], ["top"]),
    (["file:stg_*"], [], ["stg_cities", "stg_people"]),
    (["stg_cities+"], ["1+joined+1"], []),                       # graph operators in --exclude
    ([], ["@stg_cities"], []),
    ([], ["config.materialized:table"], ["raw.cities", "raw.people", "stg_cities"]),
    (["config.materialized:seed"], [], ["raw.cities", "raw.people"]),
    ([], ["config.materialized:view", "kind:seed", "stg_people+1"], ["top"]),
    (["+top"], ["config.materialized:table,path:models/stg", "resource_type:seed"],
     ["stg_cities", "joined", "top"]),                              # intersection in --exclude
])
def test_selection(sel: Graph, select: list[str], exclude: list[str],
                   expected: list[str]) -> None:
    got = sel.select(select, exclude)
    assert sorted(got) == sorted(expected)
    assert got == [n for n in sel.order if n in set(expected)]


def test_selection_errors(sel: Graph) -> None:
    with pytest.raises(ConfigError, match=r"--select stg_peeple: no such node "
                                          r"\(did you mean stg_people\?\)"):
        sel.select(["stg_peeple"])
    with pytest.raises(ConfigError, match="unknown kind 'modle'"):
        sel.select(["kind:modle"])
    with pytest.raises(ConfigError, match=r"^--select tags:x: unknown selector method 'tags' "
                                          r"\(did you mean tag\?\); methods: name, tag, "):
        sel.select(["tags:x"])
    with pytest.raises(ConfigError, match=r"--exclude confg.materialized:view: unknown "
                                          r"selector method 'confg.materialized' \(did you "
                                          r"mean config.materialized\?\)"):
        sel.select([], ["confg.materialized:view"])
    with pytest.raises(ConfigError, match=r"no node has config 'materalized' "
                                          r"\(did you mean materialized\?\)"):
        sel.select(["config.materalized:view"])
    with pytest.raises(ConfigError, match="config.materialized:incremental: matches no node"):
        sel.select(["config.materialized:incremental"])
    with pytest.raises(ConfigError, match=r"unknown state 'modifed' \(did you mean modified"):
        sel.select(["state:modifed"])
    with pytest.raises(ConfigError, match=r"--select @\+top: `@` and a leading `\+` cannot "
                                          r"be combined"):
        sel.select(["@+top"])
    with pytest.raises(ConfigError, match=r"unknown resource type 'sed' \(did you mean seed"):
        sel.select(["resource_type:sed"])


def test_model_error_type(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        graph_of(tmp_path, {"models/a.sql": "SELECT * FROM nowhere"})


STATE_FILES = {
    **SEEDS,
    "models/pubs.yml": "publications:\n  people_out: {model: joined, key: [id]}\n",
    "models/stg_people.sql": "/* elt\ncolumns: {id: {tests: [not_null]}}\n*/\n"
                             "SELECT * FROM raw.people",
    "models/stg_cities.sql": "SELECT * FROM raw.cities",
    "models/joined.sql": "SELECT p.id, c.city FROM stg_people AS p JOIN stg_cities AS c "
                         "ON c.id = p.city_id",
}


def test_state_selectors_compare_with_each_nodes_last_good_build(tmp_path: Path) -> None:
    ctx, _ = make_ctx(tmp_path, STATE_FILES)
    with pytest.raises(ConfigError, match=r"--select state:modified: no manifest to compare "
                                          r"with at target/state/manifest.json; a clean"):
        ctx.graph().select(["state:modified"])
    assert {r.status for r in ctx.build().results} == {"success"}
    graph = ctx.graph()
    assert graph.select(["state:modified"]) == []  # published.* too: never built
    assert graph.select(["state:unmodified"]) == graph.order
    saved = tmp_path / "prod-artifacts"
    shutil.copytree(tmp_path / "target" / "state", saved)
    write(tmp_path, {"models/stg_people.sql": STATE_FILES["models/stg_people.sql"] + " -- v2",
                     "models/stg_cities.sql": "/* elt\nmaterialized: view\n*/\n"
                                              "SELECT * FROM raw.cities",
                     "models/extra.sql": "SELECT * FROM joined WHERE id > 1"})
    graph = ctx.graph()
    assert graph.select(["state:modified"]) == ["stg_cities", "stg_people", "extra"]
    assert graph.select(["state:modified.body"]) == ["stg_people", "extra"]
    assert graph.select(["state:modified.configs"]) == ["stg_cities", "extra"]
    assert graph.select(["state:new"]) == ["extra"]
    assert set(graph.select(["state:modified+"])) == {"stg_cities", "stg_people", "joined",
                                                      "not_null_stg_people_id", "extra"}
    assert graph.select(["state:modified,config.materialized:view"]) == ["stg_cities"]
    assert graph.select(["state:modified"], ["state:new"]) == ["stg_cities", "stg_people"]
    # a build of what changed: only those run (and the tests of the selected models) ...
    write(tmp_path, {"models/extra.sql": "SELECT nope FROM joined"})  # and one fails
    run = ctx.build(["state:modified"])
    assert {r.name: r.status for r in run.results} == {
        "stg_cities": "success", "stg_people": "success", "not_null_stg_people_id": "success",
        "extra": "error"}
    # ... then they are the last good state, but what failed stays modified
    assert ctx.graph().select(["state:modified"]) == ["extra"]
    # --state DIR: another build's manifest (here the first one's)
    other = Context(tmp_path, console=ctx.console, state=saved)
    assert other.graph().select(["state:modified"]) == ["stg_cities", "stg_people", "extra"]


def test_ls_build_and_test_take_dbt_selectors_and_state(tmp_path: Path) -> None:
    make_ctx(tmp_path, STATE_FILES)

    def listed(*args: str) -> list[str]:
        run = elt(tmp_path, "ls", "--format", "csv", *args)
        assert run.code == 0, run.output
        return [line.split(",")[0] for line in run.stdout.splitlines()[1:]]

    assert listed("-s", "1+joined") == ["stg_cities", "stg_people", "joined"]
    assert listed("-s", "@stg_cities", "--exclude", "+joined") == []
    assert listed("-s", "@stg_cities stg_people+", "--exclude", "resource_type:test") == [
        "raw.cities", "raw.people", "stg_cities", "stg_people", "joined"]
    assert elt(tmp_path, "build").code == 0
    write(tmp_path, {"models/stg_cities.sql": "SELECT *, 1 AS v FROM raw.cities"})
    saved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "target" / "state", saved)
    assert listed("-s", "state:modified+") == ["stg_cities", "joined"]
    build = elt(tmp_path, "build", "-s", "state:modified+1")
    assert build.code == 0, build.output
    assert "stg_cities" in build.stdout and "stg_people" not in build.stdout
    assert listed("-s", "state:modified+") == []
    assert listed("-s", "state:modified+", "--state", str(saved)) == ["stg_cities", "joined"]
    test = elt(tmp_path, "test", "-s", "config.materialized:test")
    assert test.code == 0 and "not_null_stg_people_id" in test.stdout, test.output
    bad = elt(tmp_path, "ls", "-s", "stat:modified")
    assert bad.code == 1 and bad.stderr.strip().splitlines() == [
        "error: --select stat:modified: unknown selector method 'stat' (did you mean state?); "
        "methods: name, tag, path, file, kind, resource_type, config.<key>, state, test_type"]


def test_publications_take_the_same_selector_syntax(tmp_path: Path) -> None:
    def pub(name: str, *deps: str, tags: tuple[str, ...] = (), mode: str = "upsert") -> Any:
        return Publication(name=name, model=f"m_{name}", endpoint="api", kind="rest",
                           key=("id",), mode=mode, path=tmp_path / "models" / f"{name}.yml",
                           depends_on=deps, tags=tags)

    pubs = {p.name: p for p in [pub("groups", tags=("uois",)), pub("users", tags=("uois",)),
                                pub("memberships", "groups", "users", tags=("uois",)),
                                pub("externalids", "users", mode="insert"),
                                pub("datasets")]}
    assert select_pubs(pubs, ["@groups"]) == ["groups", "users", "memberships"]
    assert sorted(select_pubs(pubs, ["users+1"])) == ["externalids", "memberships", "users"]
    assert select_pubs(pubs, ["1+memberships"]) == ["groups", "users", "memberships"]
    assert select_pubs(pubs, ["tag:uois,users+"]) == ["users", "memberships"]
    assert select_pubs(pubs, ["config.mode:insert"]) == ["externalids"]
    assert select_pubs(pubs, ["path:models/datasets.yml"]) == ["datasets"]
    assert select_pubs(pubs, ["*s"], ["@users"]) == ["datasets"]
    with pytest.raises(ConfigError, match=r"unknown selector method 'tags' \(did you mean tag"):
        select_pubs(pubs, ["tags:uois"])
    with pytest.raises(ConfigError, match="'nope' matches no publication"):
        select_pubs(pubs, ["nope"])
