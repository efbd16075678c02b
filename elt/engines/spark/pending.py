"""The pending set of a publication computed in Spark (a `type: spark` target).

The model's rows stay in Spark: key text, key object, body and its md5 are spelled in Spark
SQL exactly as DuckDB's json_array / json_object / to_json print them (`json_text`), the
ledger rows of the publication come over as a small parquet snapshot exported by DuckDB
(`ledger.ledger_rows_sql`), and the classification is `ledger.classify_sql`, the very SQL
DuckDB runs. The result is written as the two files the sender reads for any target
(`<pub>.parquet` keys, `<pub>.bodies.parquet`), so switching engines resends nothing.

Only column types whose DuckDB JSON text Spark can spell exactly are handled (strings,
integers, booleans, dates, timestamps without zone, lists and structs of them); for any other
(DOUBLE: DuckDB and Java print shortest doubles differently) `NotExact` says which column,
and the runner computes that publication's pending set with DuckDB over Spark's parquet.
The Spark session comes from a factory the Context injects: publish imports no Spark code.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from elt.core.db import literal
from elt.core.errors import EltError, PublishError
from elt.publish import ledger
from elt.publish.ledger import PendingQuery

_INTEGERS = ("byte", "short", "integer", "long")


class NotExact(Exception):
    """A column whose DuckDB JSON text Spark cannot reproduce byte for byte."""


def sql_string(text: str) -> str:
    """A Spark SQL string literal (Spark reads backslash escapes inside quotes)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _name_text(name: str) -> str:
    """A JSON object key as DuckDB writes it (its escapes are the same as Jackson's)."""
    return json.dumps(name, ensure_ascii=False)


def json_text(expr: str, dtype: Any, depth: int = 0) -> str:
    """Spark SQL giving DuckDB's JSON text of `expr` (of Spark type `dtype`; NULL -> null).

    Strings go through Jackson (to_json of a one-element array, brackets cut), whose escapes
    equal DuckDB's (tests/test_spark_publish.py checks every ASCII character); numbers,
    booleans, dates and timestamps print alike as text; lists and structs are joined here.
    """
    kind = dtype.typeName()
    if kind == "string":
        whole = f"to_json(array({expr}))"
        return f"substring({whole}, 2, length({whole}) - 2)"
    if kind in _INTEGERS or kind == "boolean":
        return f"coalesce(CAST({expr} AS STRING), 'null')"
    if kind in ("date", "timestamp_ntz"):
        return f"coalesce(concat('\"', CAST({expr} AS STRING), '\"'), 'null')"
    if kind == "array":
        var = f"__elt_v{depth}"
        inner = json_text(var, dtype.elementType, depth + 1)
        return (f"coalesce(concat('[', array_join(transform({expr}, {var} -> {inner}), ','), "
                f"']'), 'null')")
    if kind == "struct":
        parts = [json_text(f"{expr}.`{f.name}`", f.dataType, depth + 1) for f in dtype.fields]
        return f"CASE WHEN {expr} IS NULL THEN 'null' ELSE {_object(dtype.fields, parts)} END"
    raise NotExact(dtype.simpleString())


def _object(fields: list[Any], values: list[str]) -> str:
    """concat('{"a":', a, ',"b":', b, '}') for field names and their JSON texts."""
    args = []
    for i, (field, value) in enumerate(zip(fields, values, strict=True)):
        name = field if isinstance(field, str) else field.name
        args += [sql_string(("{" if i == 0 else ",") + _name_text(name) + ":"), value]
    return f"concat({', '.join(args)}, '}}')" if args else "'{}'"


def _col(name: str) -> str:
    return f"`{name.replace('`', '``')}`"


def spark_relation(q: PendingQuery) -> str:
    """"main"."x" (DuckDB quoting, as PendingQuery holds it) -> `main`.`x`."""
    parts = re.findall(r'"((?:[^"]|"")*)"|([^."]+)', q.relation)
    return ".".join(_col(quoted.replace('""', '"') or bare) for quoted, bare in parts)


class SparkPending:
    """Computes pending sets in Spark; one per publish run (the session is made lazily)."""

    def __init__(self, session: Callable[[], Any], work_dir: Path) -> None:
        self._session_factory = session
        self._spark: Any = None
        self._work_dir = work_dir

    @property
    def spark(self) -> Any:
        if self._spark is None:
            self._spark = self._session_factory()
        return self._spark

    def start(self) -> None:
        """Start Spark before the database is opened (its start-up holds no lock)."""
        _ = self.spark

    # -- the model side ---------------------------------------------------------------
    def columns(self, q: PendingQuery) -> dict[str, Any]:
        return {f.name: f.dataType for f in self.spark.table(spark_relation(q)).schema.fields}

    def model_sql(self, q: PendingQuery, *, with_body: bool) -> str:
        """Spark's twin of ledger._model_cte; raises NotExact naming a column it cannot
        spell as DuckDB does."""
        cols = self.columns(q)
        missing = [c for c in (*q.key, *([q.body] if q.body else []),
                               *([q.refuse] if q.refuse else [])) if c not in cols]
        if missing:
            raise PublishError(f"column {missing[0]!r} not in the model (columns: "
                               f"{', '.join(cols)})",
                               where=f"publication {q.publication!r} (model {q.relation})")
        try:
            keys = [json_text(_col(k), cols[k]) for k in q.key]
            if q.body is not None:
                body = (f"coalesce(CAST({_col(q.body)} AS STRING), 'null')"
                        if cols[q.body].typeName() == "string"
                        else json_text(_col(q.body), cols[q.body]))
            else:
                data = [c for c in cols if not c.startswith("_elt_") and c != q.refuse]
                body = _object(data, [json_text(_col(c), cols[c]) for c in data])
            tomb = "CAST(NULL AS STRING)"
            if q.delete_body:
                if cols[q.delete_body].typeName() != "string":
                    raise NotExact(cols[q.delete_body].simpleString())
                tomb = _col(q.delete_body)
        except NotExact as exc:
            raise NotExact(f"publication {q.publication}: a column is {exc}") from None
        key = "concat('[', " + ", ',', ".join(keys) + ", ']')"
        key_json = _object(list(q.key), keys)
        last = f"{body} AS body" if with_body else f"md5({body}) AS hash"
        wave = _col(q.wave) if q.wave else "CAST(NULL AS STRING)"
        refusal = (f"CAST({_col(q.refuse)} AS STRING)" if q.refuse
                   else "CAST(NULL AS STRING)")
        return (f"SELECT {key} AS key, {key_json} AS key_json, {last}, {tomb} AS tombstone, "
                f"{wave} AS wave, {refusal} AS refusal, CAST(NULL AS STRING) AS waiting "
                f"FROM {spark_relation(q)}")

    def check_model(self, q: PendingQuery) -> None:
        """Keys not NULL and unique (as ledger.check_model says it for DuckDB)."""
        where = f"publication {q.publication!r} (model {q.relation})"
        model = self.model_sql(q, with_body=False)
        nulls = " OR ".join(f"{_col(k)} IS NULL" for k in q.key)
        nnull = self.spark.sql(f"SELECT count(*) FROM {spark_relation(q)} WHERE {nulls}"
                               ).collect()[0][0]
        if nnull:
            raise PublishError(f"{nnull} row(s) have a NULL key column {list(q.key)}",
                               where=where)
        dups = self.spark.sql(f"SELECT key, count(*) FROM ({model}) GROUP BY key "
                              "HAVING count(*) > 1 LIMIT 1").collect()
        if dups:
            raise PublishError(f"key {dups[0][0]} appears {dups[0][1]} times; keys must be "
                               "unique", where=where)

    # -- the ledger side and the classification ----------------------------------------
    def _classified(self, con: duckdb.DuckDBPyConnection, q: PendingQuery, folder: Path
                    ) -> str:
        """Export the publication's ledger rows to parquet; return the classification
        SQL over them (Spark)."""
        snapshot = folder / "ledger.parquet"
        folder.mkdir(parents=True, exist_ok=True)
        rows = ledger.ledger_rows_sql(q, ledger.ledger_relation(con), literal(q.publication))
        con.execute(f"COPY ({rows}) TO {literal(str(snapshot))} (FORMAT parquet)")
        view = f"__elt_ledger_{abs(hash(q.publication))}"
        self.spark.read.parquet(snapshot.as_uri()).createOrReplaceTempView(view)
        return (f"WITH mh AS ({self.model_sql(q, with_body=False)}), l AS (SELECT * FROM "
                f"{view}), {ledger.classify_sql(q)}")

    def pending_counts(self, con: duckdb.DuckDBPyConnection, q: PendingQuery
                       ) -> dict[str, int]:
        """Keys per reason and `pending`, as ledger.pending_counts."""
        folder = self._work_dir / f"{q.publication}.counts.spark"
        try:
            sql = self._classified(con, q, folder)
            counts = dict.fromkeys(ledger.REASONS, 0)
            pending = 0
            for reason, n, with_op in self.spark.sql(
                    f"SELECT reason, count(*), count(op) FROM ({sql}) GROUP BY reason"
                    ).collect():
                if reason in counts:
                    counts[reason] = int(n)
                pending += int(with_op)
            counts["pending"] = pending
            return counts
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def copy_pending(self, con: duckdb.DuckDBPyConnection, q: PendingQuery, path: Path
                     ) -> tuple[int, int]:
        """Write the keys and bodies files as ledger.copy_pending does; (to send, held)."""
        folder = path.with_name(f"{q.publication}.spark")
        try:
            sql = self._classified(con, q, folder)
            pending = folder / "pending"
            self.spark.sql(f"SELECT key, key_json, op, hash, retry_of_unknown, absent, "
                           f"tombstone, wave, reason FROM ({sql}) WHERE op IS NOT NULL OR "
                           "reason = 'settling'").write.parquet(pending.as_uri())
            view = f"__elt_pending_{abs(hash(q.publication))}"
            self.spark.read.parquet(pending.as_uri()).createOrReplaceTempView(view)
            self._single_file(f"SELECT key, key_json, op, hash, retry_of_unknown, absent, "
                              f"tombstone, wave FROM {view} WHERE op IS NOT NULL",
                              folder / "keys", path)
            self._single_file(f"SELECT key, body FROM ({self.model_sql(q, with_body=True)}) "
                              f"WHERE key IN (SELECT key FROM {view} WHERE NOT absent AND op "
                              "IS NOT NULL)", folder / "bodies", ledger.bodies_path(path))
            count, held = self.spark.sql(f"SELECT count(op), count_if(reason = 'settling') "
                                         f"FROM {view}").collect()[0]
            self.spark.catalog.dropTempView(view)
            return int(count), int(held)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _single_file(self, sql: str, folder: Path, path: Path) -> None:
        """Write a query as one parquet file at `path` (the sender reads one file)."""
        self.spark.sql(sql).coalesce(1).write.parquet(folder.as_uri())
        parts = sorted(folder.glob("part-*.parquet"))
        if len(parts) != 1:
            raise PublishError(f"Spark wrote {len(parts)} parquet files for {path.name}, "
                               "expected one")
        shutil.move(str(parts[0]), str(path))


def pending_in_spark(engine: Any, con: duckdb.DuckDBPyConnection, query: PendingQuery,
                     parquet: Path, count_only: bool, say: Callable[[str], None]
                     ) -> tuple[int, int] | None:
    """(pending rows, held rows) of a publication computed in Spark and written to
    `parquet` (count_only: counted, nothing written), or None: DuckDB computes this one over
    Spark's parquet (a column whose JSON text Spark cannot spell exactly, or a model Spark
    cannot read), which `say` tells the user."""
    if query.waits:  # the upstream's ledger rows are in the state database, not Spark's
        say(f"publication {query.publication}: rows wait on rows of "
            f"{', '.join(u for u, _ in query.waits)}: its pending set is computed by DuckDB "
            "over Spark's parquet")
        return None
    try:
        engine.model_sql(query, with_body=False)
    except NotExact as exc:
        why = str(exc)
    except EltError:
        why = None  # a bad key or body column: Spark's check says it as DuckDB's would
    except Exception as exc:  # noqa: BLE001 - Spark cannot read the model (a view, ...)
        why = f"publication {query.publication}: Spark: {str(exc).strip().splitlines()[0]}"
    else:
        why = None
    if why is not None:
        say(f"{why}: its pending set is computed by DuckDB over Spark's parquet")
        return None
    try:
        engine.check_model(query)
        if count_only:
            return engine.pending_counts(con, query)["pending"], 0
        count, held = engine.copy_pending(con, query, parquet)
        return count, held
    except EltError:
        raise
    except Exception as exc:  # noqa: BLE001 - a Spark error: one line, no trace
        raise PublishError(f"Spark: {str(exc).strip().splitlines()[0]}",
                           where=f"publication {query.publication!r}") from None
