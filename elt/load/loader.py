"""Seeds into raw.*: fingerprints, incremental add/replace/remove, one transaction per seed.

DuckDB's readers do all row work. `_elt.files` holds one fingerprint per file and
`_elt.loads` an append-only event log; the spec checksum is the comment of the table's
`_elt_source_file` column, so it lives and dies with the table it describes.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from elt.core import db
from elt.core.console import Console, Progress
from elt.core.db import literal, quote
from elt.core.errors import LoadError
from elt.load.checks import SeedFile, check_headers, check_items, check_keyed, empty_error
from elt.project import seedsql as ss
from elt.project.config import Project
from elt.project.seeds import SeedSpec

__all__ = ["LoadOutcome", "ensure_state", "load_seed", "seed_version"]

ELT_COLUMNS = ("_elt_source_file", "_elt_load_id")
PROGRESS_BYTES = 1_000_000
CHECKSUM_PREFIX = "elt spec "
_STATE_DDL = (
    "CREATE SCHEMA IF NOT EXISTS raw",
    "CREATE SCHEMA IF NOT EXISTS _elt",
    "CREATE SEQUENCE IF NOT EXISTS _elt.load_seq START 1",
    "CREATE TABLE IF NOT EXISTS _elt.files (seed VARCHAR, path VARCHAR, size BIGINT, "
    "mtime DOUBLE, sha256 VARCHAR, load_id BIGINT, rows BIGINT, loaded_at TIMESTAMP, "
    "PRIMARY KEY (seed, path))",
    "CREATE TABLE IF NOT EXISTS _elt.loads (load_id BIGINT, seed VARCHAR, path VARCHAR, "
    "kind VARCHAR, rows BIGINT, \"at\" TIMESTAMP)",
)


def ensure_state(con: duckdb.DuckDBPyConnection) -> None:
    """Create schema raw and the load state in _elt (idempotent)."""
    for statement in _STATE_DDL:
        con.execute(statement)


def seed_version(con: duckdb.DuckDBPyConnection, name: str) -> int:
    """Max load event id of a seed: it changes whenever raw.<name> may have changed."""
    if not db.table_exists(con, "_elt", "loads"):
        return 0
    sql = "SELECT coalesce(max(load_id), 0) FROM _elt.loads WHERE seed = ?"
    return int(con.execute(sql, [name]).fetchone()[0])


@dataclass
class LoadOutcome:
    status: str  # "success" | "up_to_date"
    rows: int
    added: int
    replaced: int
    removed: int
    message: str | None


class _Retry(Exception):
    """This attempt cannot work (the increment does not fit the table); try the next one."""


def load_seed(con: duckdb.DuckDBPyConnection, project: Project, spec: SeedSpec, *,
              full_refresh: bool = False, console: Console | None = None) -> LoadOutcome:
    """Bring raw.<spec.name> in line with spec.paths, doing as little work as possible."""
    ensure_state(con)
    stored = {r[0]: r[1:] for r in con.execute(
        "SELECT path, size, mtime, sha256, load_id, rows FROM _elt.files WHERE seed = ?",
        [spec.name]).fetchall()}
    files = [_fingerprint(spec, project.seeds_dir, p, stored) for p in spec.paths]
    changed = [f for f in files if f.rel not in stored or stored[f.rel][2] != f.sha256]
    removed = sorted(set(stored) - {f.rel for f in files})
    marker = _columns(con, spec.name).get("_elt_source_file", ("", None))[1]
    full = full_refresh or not stored or marker != CHECKSUM_PREFIX + spec.checksum
    if not full and not changed and not removed:
        _touch(con, spec.name, [f for f in files if tuple(stored[f.rel][:2]) != (f.size, f.mtime)])
        return LoadOutcome("up_to_date", _count(con, spec.name), 0, 0, 0, None)
    job = _Job(con, spec, project.seeds_dir, console, stored, files, removed)
    # incremental if allowed; else full; a full load whose sampled types failed is redone
    # with types inferred from whole files (sample_size = -1)
    attempts = ([] if full else [(False, False)]) + [(True, False), (True, True)]
    for i, (is_full, exhaustive) in enumerate(attempts):
        try:
            return job.run(files if is_full else changed, is_full, exhaustive,
                           last=i == len(attempts) - 1)
        except _Retry:
            continue
    raise AssertionError("unreachable: the last attempt never retries")


def _fingerprint(spec: SeedSpec, seeds_dir: Path, path: Path, stored: dict[str, Any]) -> SeedFile:
    """size + mtime + sha256; the hash is reused while size and mtime are unchanged."""
    rel = spec.rel(path, seeds_dir)
    try:
        st = path.stat()
        old = stored.get(rel)
        if old and (old[0], old[1]) == (st.st_size, st.st_mtime):
            sha = old[2]
        else:
            with path.open("rb") as fh:
                sha = hashlib.file_digest(fh, "sha256").hexdigest()
    except FileNotFoundError as exc:
        raise LoadError("file not found", where=f"seeds/{rel}") from exc
    except OSError as exc:
        raise LoadError(f"cannot read file: {exc.strerror or exc}", where=f"seeds/{rel}") from exc
    if st.st_size == 0:
        raise LoadError("empty file (0 bytes)", where=f"seeds/{rel}")
    return SeedFile(rel, path, st.st_size, st.st_mtime, sha)


def _touch(con: duckdb.DuckDBPyConnection, seed: str, files: list[SeedFile]) -> None:
    """Same content, new size/mtime: remember them so the next run skips hashing."""
    if files:
        con.executemany("UPDATE _elt.files SET size = ?, mtime = ? WHERE seed = ? AND path = ?",
                        [[f.size, f.mtime, seed, f.rel] for f in files])


def _columns(con: duckdb.DuckDBPyConnection, name: str) -> dict[str, tuple[str, str | None]]:
    """raw.<name>'s columns: {name: (type, comment)}."""
    return {r[0]: (r[1], r[2]) for r in con.execute(
        "SELECT column_name, data_type, comment FROM duckdb_columns() WHERE database_name = "
        "current_database() AND schema_name = 'raw' AND table_name = ?", [name]).fetchall()}


def _count(con: duckdb.DuckDBPyConnection, name: str) -> int:
    return int(con.execute(f"SELECT count(*) FROM raw.{quote(name)}").fetchone()[0])


class _Job:
    """One seed's load: the steps that share the connection, spec and file state."""

    def __init__(self, con: duckdb.DuckDBPyConnection, spec: SeedSpec, seeds_dir: Path,
                 console: Console | None, stored: dict[str, Any], files: list[SeedFile],
                 removed: list[str]) -> None:
        self.con, self.spec, self.seeds_dir, self.console = con, spec, seeds_dir, console
        self.stored, self.files, self.removed = stored, files, removed
        self.table = f"raw.{quote(spec.name)}"
        self.csv = spec.options["format"] in ("csv", "tsv")
        self.exhaustive = False
        self.progress: Progress | None = None

    def run(self, to_load: list[SeedFile], full: bool, exhaustive: bool, last: bool) -> LoadOutcome:
        """One attempt in one transaction; any failure leaves table and state untouched."""
        self.exhaustive, con, warnings = exhaustive, self.con, []
        if self.console and sum(f.size for f in to_load) > PROGRESS_BYTES:
            self.progress = self.console.progress(f"raw.{self.spec.name}", len(to_load), "files")
        loadable = to_load
        con.execute("BEGIN")
        try:
            load_id = int(con.execute("SELECT nextval('_elt.load_seq')").fetchone()[0])
            loadable = self._prepare(to_load, warnings)
            if full:
                self._build_full(loadable, load_id)
            else:
                self._increment(to_load, loadable, load_id)
            self._record(to_load, full, load_id)
            con.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(duckdb.Error):  # a failed COMMIT has rolled back already
                con.execute("ROLLBACK")
            if not isinstance(exc, duckdb.Error):
                raise
            column = re.search(r'converting column "(.+?)"', str(exc))
            if not last and isinstance(exc, duckdb.ConversionException) and not (
                    column and column.group(1) in self.spec.options["columns"]):
                raise _Retry from exc  # inferred types did not fit: widen them
            try:
                error = self._explain(exc, loadable)
            except Exception:  # diagnosis is best effort: never hide the original error
                error = LoadError(ss.one_line(str(exc), None)[0],
                                  where=f"seeds/{self.spec.pattern}")
            raise error from exc
        finally:
            if self.progress:
                self.progress.close()
            self.progress = None
        if self.console:
            for text in warnings:
                self.console.warn(text)
        added, removed = sum(f.rel not in self.stored for f in to_load), len(self.removed)
        counts = (added, "added"), (len(to_load) - added, "replaced"), (removed, "removed")
        parts = [f"{n} {kind}" for n, kind in counts if n] or ["0 added"]
        parts[0] = parts[0].replace(" ", " file " if parts[0][:2] == "1 " else " files ", 1)
        message = ("full reload: " if full and self.stored else "") + ", ".join(parts)
        return LoadOutcome("success", _count(con, self.spec.name), added, len(to_load) - added,
                           removed, "; ".join([message, *warnings]))

    def _select(self, files: list[SeedFile], load_id: int,
                types: dict[str, str] | None = None) -> str:
        inner = ss.reader_sql(self.spec, [f.path for f in files], types=types,
                              exhaustive=self.exhaustive)
        start = len(self.seeds_dir.as_posix()) + 2
        return (f"SELECT * EXCLUDE (_elt_source_file), substr(_elt_source_file, {start}) AS "
                f"_elt_source_file, {load_id}::BIGINT AS _elt_load_id FROM ({inner})")

    def _build_full(self, files: list[SeedFile], load_id: int) -> None:
        """Build beside the old table, then swap: nobody ever sees a half table."""
        spec, con = self.spec, self.con
        tmp = f"raw.{quote('__elt_new_' + spec.name)}"
        con.execute(f"DROP TABLE IF EXISTS {tmp}")
        if files:
            self._execute(f"CREATE TABLE {tmp} AS {self._select(files, load_id)}", files)
        else:
            cols = [f"{quote(c)} {t}" for c, t in spec.options["columns"].items()]
            con.execute(f"CREATE TABLE {tmp} ({', '.join(cols + ['_elt_source_file VARCHAR'])}"
                        ", _elt_load_id BIGINT)")
        con.execute(f"COMMENT ON COLUMN {tmp}._elt_source_file IS "
                    f"{literal(CHECKSUM_PREFIX + spec.checksum)}")
        if spec.description:
            con.execute(f"COMMENT ON TABLE {tmp} IS {literal(str(spec.description))}")
        con.execute(f"DROP TABLE IF EXISTS {self.table}")
        con.execute(f"ALTER TABLE {tmp} RENAME TO {quote(spec.name)}")

    def _increment(self, to_load: list[SeedFile], files: list[SeedFile], load_id: int) -> None:
        """Delete changed and removed files' rows; append the new rows typed like the table."""
        gone = self.removed + [f.rel for f in to_load if f.rel in self.stored]
        if gone:
            self.con.execute(f"DELETE FROM {self.table} WHERE _elt_source_file IN "
                             "(SELECT unnest(?::VARCHAR[]))", [gone])
        if not files:
            return
        have = {name: sql_type for name, (sql_type, _) in _columns(self.con, self.spec.name)
                .items()}
        incoming = self.con.execute(
            f"DESCRIBE {ss.reader_sql(self.spec, [f.path for f in files])}").fetchall()
        types: dict[str, str] = {}
        for name, sql_type, *_ in incoming:
            if name in ELT_COLUMNS:
                continue
            if name not in have:
                raise _Retry  # a new column: rebuild the whole table with union_by_name
            types[name] = have[name]
            if sql_type != have[name] and not self.csv and not self.con.execute(
                    f"SELECT can_cast_implicitly(NULL::{sql_type}, NULL::{have[name]})"
            ).fetchone()[0]:
                raise _Retry  # e.g. DOUBLE arriving in a BIGINT column
        self._execute(f"INSERT INTO {self.table} BY NAME "
                      f"{self._select(files, load_id, types if self.csv else None)}", files)

    def _execute(self, sql: str, files: list[SeedFile]) -> None:
        """Run one load statement; meanwhile turn DuckDB's query progress into files done."""
        progress, con = self.progress, self.con
        if progress is None:
            con.execute(sql)
            return
        settings = ("enable_progress_bar", "enable_progress_bar_print")
        old = [con.execute(f"SELECT current_setting('{s}')").fetchone()[0] for s in settings]
        con.execute("SET enable_progress_bar = true; SET enable_progress_bar_print = false")
        stop, avg = threading.Event(), sum(f.size for f in files) // max(len(files), 1)

        def step(done: int) -> None:
            if done > progress.done:
                progress.advance(done - progress.done, nbytes=(done - progress.done) * avg)

        def watch() -> None:
            while not stop.wait(0.2):
                step(int(len(files) * max(con.query_progress(), 0.0) / 100))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            con.execute(sql)
        finally:
            stop.set()
            watcher.join()
            for name, value in zip(settings, old, strict=True):
                con.execute(f"SET {name} = {str(value).lower()}")
        step(len(files))

    def _record(self, to_load: list[SeedFile], full: bool, load_id: int) -> None:
        """Events into _elt.loads and fingerprints into _elt.files, in the same transaction."""
        con, seed = self.con, self.spec.name
        rows = dict(con.execute(f"SELECT _elt_source_file, count(*) FROM {self.table} WHERE "
                                "_elt_load_id = ? GROUP BY 1", [load_id]).fetchall())
        for rel, n in sorted(rows.items()) if self.spec.options["format"] == "document" else []:
            if n > 1:
                raise LoadError(f"expected one JSON document, found {n} values (NDJSON? use "
                                "format: ndjson)", where=f"seeds/{rel}")
        if self.spec.options["format"] == "document":
            bad = con.execute(f"SELECT _elt_source_file, json_type(content) FROM {self.table} "
                              "WHERE _elt_load_id = ? AND json_type(content) NOT IN "
                              "('OBJECT', 'ARRAY') ORDER BY 1 LIMIT 1", [load_id]).fetchone()
            if bad:
                raise LoadError("expected a JSON object or list, found "
                                f"{ss.JSON_KIND.get(bad[1], bad[1])}", where=f"seeds/{bad[0]}")
        for f in [] if self.spec.allow_empty else to_load:  # JSON ones failed in _prepare
            if not rows.get(f.rel):
                what = "only a header" if self.csv and self.spec.options["header"] \
                    else "no data"
                raise empty_error(self.spec, f"seeds/{f.rel}", what)
        now = datetime.now(UTC).replace(tzinfo=None)
        events = [(f.rel, "replaced" if f.rel in self.stored else "added", rows.get(f.rel, 0))
                  for f in to_load] + [(r, "removed", self.stored[r][4]) for r in self.removed]
        columns = [list(c) for c in zip(*events, strict=True)] if events else [[], [], []]
        con.execute("INSERT INTO _elt.loads (load_id, seed, path, kind, rows, \"at\") SELECT ?, ?, "
                    "unnest(?::VARCHAR[]), unnest(?::VARCHAR[]), unnest(?::BIGINT[]), ?",
                    [load_id, seed, *columns, now])
        con.execute("DELETE FROM _elt.files WHERE seed = ? AND (? OR path IN (SELECT unnest("
                    "?::VARCHAR[])))", [seed, full, [f.rel for f in to_load] + self.removed])
        if not full:
            loaded = {f.rel for f in to_load}
            _touch(con, seed, [f for f in self.files if f.rel not in loaded
                               and tuple(self.stored[f.rel][:2]) != (f.size, f.mtime)])
        con.execute(
            "INSERT INTO _elt.files (seed, path, size, mtime, sha256, load_id, rows, loaded_at) "
            "SELECT ?, unnest(?::VARCHAR[]), unnest(?::BIGINT[]), unnest(?::DOUBLE[]), "
            "unnest(?::VARCHAR[]), ?, unnest(?::BIGINT[]), ?",
            [seed, [f.rel for f in to_load], [f.size for f in to_load],
             [f.mtime for f in to_load], [f.sha256 for f in to_load], load_id,
             [rows.get(f.rel, 0) for f in to_load], now])

    def _prepare(self, files: list[SeedFile], warnings: list[str]) -> list[SeedFile]:
        """Check what DuckDB's readers would accept silently; return the files with rows."""
        spec, con = self.spec, self.con
        try:
            con.execute("SELECT " + ", ".join(["1"] + [f"CAST(NULL AS {t})" for t in
                                                       spec.options["columns"].values()]))
        except duckdb.Error as exc:
            problem = ss.one_line(str(exc), None)[0]
            raise LoadError(f"seed {spec.name!r}: bad type in `columns:`: {problem}",
                            where=str(spec.config_path or "seeds")) from exc
        if files and spec.options["json_key"]:
            files = check_keyed(con, spec, files, warnings)
        elif files and spec.options["format"] in ("json", "ndjson"):
            files = check_items(con, spec, files, warnings)
        if self.csv and files:
            fresh = {f.rel for f in files
                     if f.rel not in self.stored or self.stored[f.rel][2] != f.sha256}
            table = [c for c in _columns(con, spec.name) if c not in ELT_COLUMNS]
            check_headers(spec, files, fresh, table, warnings)
        for f in files if spec.options["columns"] else []:
            names = [r[0] for r in con.execute(
                f"DESCRIBE {ss.reader_sql(spec, [f.path], cast=False)}").fetchall()
                if r[0] not in ELT_COLUMNS]
            for column in spec.options["columns"]:
                if column not in names:
                    hint = "; wrong delimiter?" if len(names) == 1 else ""
                    raise LoadError(f"column {column!r} from seeds.yml `columns:` is not in the "
                                    f"file (it has: {', '.join(names)[:120]}){hint}",
                                    where=f"seeds/{f.rel}")
        return files

    def _explain(self, exc: duckdb.Error, files: list[SeedFile]) -> LoadError:
        """DuckDB's multi-line message -> one line naming the file (and line) at fault."""
        text = str(exc)
        hits = [f for f in files if f.path.as_posix() in text]
        culprit = max(hits, key=lambda f: len(f.path.as_posix())) if hits else None
        if culprit is None and len(files) > 1:
            for f in files:  # the message names no file: read them one by one to find it
                try:
                    self.con.execute(f"SELECT count(*) FROM ({self._select([f], 0)})").fetchall()
                except duckdb.Error as single:
                    return self._explain(single, [f])
        culprit = culprit or (files[0] if files else None)
        where = f"seeds/{culprit.rel}" if culprit else f"seeds/{self.spec.pattern}"
        if culprit and self.csv and "Error when sniffing file" in text:
            try:  # the sniffer gave up without a line: read strictly to get one
                self.con.execute(ss.strict_csv_sql(self.spec, culprit.path)).fetchall()
            except duckdb.Error as strict:
                text = str(strict)
        elif culprit and "Malformed JSON" in text and not self.csv:
            found = ss.json_syntax_error(culprit.path, self.spec.options["format"] == "ndjson")
            if found:
                return LoadError(f"malformed JSON: {found[0]}", where=f"{where}:{found[1]}")
        elif culprit and isinstance(exc, duckdb.ConversionException) and not self.csv:
            for column, sql_type in self.spec.options["columns"].items():
                row = self.con.execute(
                    f"SELECT CAST({quote(column)} AS VARCHAR) FROM "
                    f"({ss.reader_sql(self.spec, [culprit.path], cast=False)}) WHERE "
                    f"{quote(column)} IS NOT NULL AND TRY_CAST({quote(column)} AS {sql_type}) "
                    "IS NULL LIMIT 1").fetchone()
                if row:
                    return LoadError(f"column {column!r}: cannot convert {row[0]!r} to "
                                     f"{sql_type}", where=where)
        message, line = ss.one_line(text, culprit.path if culprit else None)
        return LoadError(message, where=f"{where}:{line}" if line else where)
