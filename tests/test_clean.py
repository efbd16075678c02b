"""`elt clean` (elt/transform/clean.py) on a real project: after a seed and a model are deleted,
their relations and `_elt.nodes` rows go, and nothing of what still exists."""

from __future__ import annotations

from pathlib import Path

from helpers import db_query, elt, write_files

FILES = {
    "profiles.yml": """
        shop:
          target: dev
          outputs:
            dev: {type: duckdb, path: target/elt.duckdb}
    """,
    "seeds/people.csv": "id,name\n1,ann\n2,bob\n",
    "seeds/orders.csv": "id,person_id,total\n1,1,10\n2,2,20\n",
    "models/people_out.sql": "SELECT id, upper(name) AS name FROM raw.people\n",
    "models/orders_view.sql": "/* elt\nmaterialized: view\n*/\nSELECT * FROM raw.orders\n",
    "models/totals.sql": "SELECT person_id, sum(total) AS total FROM raw.orders GROUP BY 1\n",
}


def relations(db: Path) -> list[tuple[str, str]]:
    return db_query(db, "SELECT table_schema, table_name FROM information_schema.tables "
                        "WHERE table_schema IN ('main', 'raw') ORDER BY 1, 2")


def nodes(db: Path) -> list[str]:
    return [n for (n,) in db_query(db, "SELECT name FROM _elt.nodes ORDER BY name")]


def test_clean_drops_only_what_the_project_no_longer_has(tmp_path: Path) -> None:
    write_files(tmp_path, FILES)
    assert elt(tmp_path, "build").code == 0
    db = tmp_path / "target" / "elt.duckdb"
    kept = [("main", "people_out"), ("raw", "people")]
    assert relations(db) == [("main", "orders_view"), ("main", "people_out"),
                             ("main", "totals"), ("raw", "orders"), ("raw", "people")]
    before_nodes = nodes(db)
    assert {"raw.orders", "orders_view", "totals"} <= set(before_nodes)
    # the orders seed and both models on it are deleted from the project
    write_files(tmp_path, {"seeds/orders.csv": None, "models/orders_view.sql": None,
                           "models/totals.sql": None})

    dry = elt(tmp_path, "clean", "--dry-run")
    assert dry.code == 0, dry.output
    for line in ("would drop view main.orders_view", "would drop table main.totals",
                 "would drop table raw.orders", "would forget node row(s) of raw.orders",
                 "would forget node row(s) of totals", "would clean"):
        assert line in dry.output, dry.output
    assert "people" not in dry.output
    assert len(relations(db)) == 5 and nodes(db) == before_nodes  # nothing dropped

    done = elt(tmp_path, "clean")
    assert done.code == 0, done.output
    assert "drop table raw.orders" in done.output and "would" not in done.output
    assert relations(db) == kept
    assert set(nodes(db)) == set(before_nodes) - {"raw.orders", "orders_view", "totals"}
    assert {"raw.people", "people_out"} <= set(nodes(db))
    assert db_query(db, "SELECT DISTINCT seed FROM _elt.files") == [("people",)]
    assert db_query(db, "SELECT * FROM main.people_out ORDER BY id") == [(1, "ANN"), (2, "BOB")]

    again = elt(tmp_path, "clean")
    assert again.code == 0 and "nothing to clean" in again.output
    assert elt(tmp_path, "build").code == 0  # the project still builds as before
    assert relations(db) == kept
