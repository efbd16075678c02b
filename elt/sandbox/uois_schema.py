"""The UOIS schema's resolvers over the sandbox store: inserts with real integrity errors, reads.

Imitated behaviour (uois-graphql.md, "Measured on the real services"):
- A duplicate primary key fails with asyncpg's `UniqueViolationError ... Key (id)=(...)
  already exists`; a membership naming a missing user or group, a group naming a missing
  `mastergroupId` (a child before its parent) or an unknown `grouptypeId`
  (`groups_grouptype_id_fkey`), an external id of an unknown `typeidId`, with
  `ForeignKeyViolationError` (second round: nothing stored). The text carries the SQL and
  its parameters as Python values (`UUID('...')`, `None`; emails included), as the real
  error text does; uois.py appends the GraphQL excerpt.
- groupInsert accepts `valid` and `mastergroupId`.
- externalidInsert of an existing (inner, type, outer) triple answers `msg: "fail"` with
  the existing id; the same (type, outer) with another inner id is accepted.
- Root mutation fields run in order (graphql-core executes mutations serially). How a
  failure shows in the answer depends on the service: see uois.py. The resolvers consult
  the execution context: after a failing field of a gql_ug document, later inserts are not
  run (`NotRun`).
- A request held by the `slow_commit` fault waits inside its first insert, with its entity
  "in flight": a resend of that entity meanwhile counts as a race (UOIS has no such hazard
  of its own, but the counter shows a publisher that resends too early).
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from typing import Any

from graphql import GraphQLError, GraphQLNonNull, GraphQLSchema, build_schema

from elt.sandbox.store import Store
from elt.sandbox.uois_types import Types, seed_demo_types
from elt.sandbox.uois_updates import Updates

# GraphQL field name -> column, per table (the filters, orderby and row conversion use it)
COLUMNS = {
    "uois_users": {"id": "id", "name": "name", "surname": "surname", "email": "email",
                   "valid": "valid", "lastchange": "lastchange"},
    "uois_groups": {"id": "id", "name": "name", "nameEn": "name_en", "grouptypeId": "grouptype_id",
                    "mastergroupId": "mastergroup_id", "valid": "valid",
                    "lastchange": "lastchange"},
    "uois_memberships": {"id": "id", "userId": "user_id", "groupId": "group_id", "valid": "valid",
                         "startdate": "startdate", "enddate": "enddate",
                         "lastchange": "lastchange"},
    "uois_externalids": {"id": "id", "innerId": "inner_id", "typeidId": "typeid_id",
                         "outerId": "outer_id", "lastchange": "lastchange"},
    "uois_grouptypes": {"id": "id", "name": "name", "nameEn": "name_en",
                        "lastchange": "lastchange"},
    "uois_externalidtypes": {"id": "id", "name": "name", "nameEn": "name_en",
                             "urlformat": "urlformat", "categoryId": "category_id",
                             "lastchange": "lastchange"},
}
Counter = Callable[[str, str, str], None]


class DbError(Exception):
    """An integrity error worded like SQLAlchemy over asyncpg, as the services pass it on."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class NotRun(Exception):
    """A gql_ug field after a failing one: the real service does not run it."""


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def python_repr(value: object) -> str:
    """A value as the services print what they parsed: UUIDs as UUID('...'), None, datetimes
    as datetime.datetime(...) (the 401's echo of the variables, the [parameters: ...] of a
    database error)."""
    if isinstance(value, str) and _UUID.fullmatch(value):
        return f"UUID('{value}')"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {python_repr(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        inner = ", ".join(python_repr(v) for v in value)
        return f"({inner}{',' if len(value) == 1 else ''})" if isinstance(value, tuple) \
            else f"[{inner}]"
    return repr(value)


def _sql_tail(table: str, row: dict[str, Any], names: dict[str, str]) -> str:
    cols = [c for c in names if c in row]
    sql = (f"INSERT INTO {table} ({', '.join(names[c] for c in cols)}) "
           f"VALUES ({', '.join(f'${i}' for i in range(1, len(cols) + 1))})")
    params = python_repr(tuple(row[c] for c in cols))
    return f"\n[SQL: {sql}]\n[parameters: {params}]\n(Background on this error at: " \
           "https://sqlalche.me/e/20/gkpj)"


def unique_violation(table: str, key: str, tail: str = "") -> DbError:
    return DbError("unique", (
        "(sqlalchemy.dialects.postgresql.asyncpg.IntegrityError) <class "
        "'asyncpg.exceptions.UniqueViolationError'>: duplicate key value violates unique "
        f'constraint "{table}_pkey"\nDETAIL:  Key (id)=({key}) already exists.{tail}'))


def fk_violation(table: str, column: str, key: str, other: str, tail: str = "") -> DbError:
    return DbError("fk", (
        "(sqlalchemy.dialects.postgresql.asyncpg.IntegrityError) <class "
        "'asyncpg.exceptions.ForeignKeyViolationError'>: insert or update on table "
        f'"{table}" violates foreign key constraint "{table}_{column}_fkey"\n'
        f'DETAIL:  Key ({column})=({key}) is not present in table "{other}".{tail}'))


def _uuid(value: Any) -> str:
    try:
        return str(value if isinstance(value, uuid.UUID) else uuid.UUID(str(value)))
    except ValueError:
        raise GraphQLError(f"UUID cannot represent value: {value!r}") from None


def _datetime_in(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise GraphQLError(f"DateTime cannot represent value: {value!r}") from None
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _datetime_out(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _set_scalar(schema: GraphQLSchema, name: str, out: Callable, inp: Callable) -> None:
    """Attach coercion to an SDL scalar; sets both the 3.2 and the 3.3 attribute names."""
    scalar = schema.type_map[name]
    for attr, fn in (("serialize", out), ("coerce_output_value", out),
                     ("parse_value", inp), ("coerce_input_value", inp)):
        setattr(scalar, attr, fn)


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def entity_key(obj: dict[str, Any]) -> str:
    """The stats key of a mutation argument: its id, else inner|type|outer for external ids."""
    if obj.get("id"):
        return str(obj["id"])
    return "|".join(str(obj.get(k)) for k in ("innerId", "typeidId", "outerId"))


class Resolvers(Updates, Types):
    """The executable schema: resolvers reading and writing the store, counting per entity."""

    columns = COLUMNS

    def __init__(self, store: Store, counter: Counter) -> None:
        self.store = store
        self.counter = counter
        self._flights: dict[str, int] = {}
        self._flights_lock = threading.Lock()
        self.schema = self._build_schema()
        seed_demo_types(store)

    def _build_schema(self) -> GraphQLSchema:
        sdl = resources.files("elt.sandbox").joinpath("uois.graphql").read_text(encoding="utf-8")
        schema = build_schema(sdl)
        _set_scalar(schema, "UUID", _uuid, _uuid)
        _set_scalar(schema, "DateTime", _datetime_out, _datetime_in)
        mutation, query = schema.mutation_type, schema.query_type
        assert mutation is not None and query is not None
        for name, field in mutation.fields.items():
            # Nullable root fields: graphql-core nulls only the failing one (gql_externalids
            # answers so); gql_ug's "data: null" is made from that in uois.py.
            if isinstance(field.type, GraphQLNonNull):
                field.type = field.type.of_type
            field.resolve = self._counted(getattr(self, f"_{name}"))
        for name, field in query.fields.items():
            field.resolve = getattr(self, f"_{name}")
        for type_name, table in (("UserGQLModel", "uois_users"), ("GroupGQLModel", "uois_groups")):
            column = "user_id" if table == "uois_users" else "group_id"
            schema.type_map[type_name].fields["memberships"].resolve = (  # type: ignore[union-attr]
                lambda row, _info, skip=0, limit=10, _c=column: self._rows(
                    "uois_memberships", f"{_c}=?", [row["id"]], skip=skip, limit=limit))
        membership = schema.type_map["MembershipGQLModel"]
        membership.fields["user"].resolve = (  # type: ignore[union-attr]
            lambda row, _info: self._get("uois_users", row["userId"]))
        membership.fields["group"].resolve = (  # type: ignore[union-attr]
            lambda row, _info: self._get("uois_groups", row["groupId"]))
        schema.type_map["UserGQLModel"].fields["fullname"].resolve = (  # type: ignore[union-attr]
            lambda row, _info: " ".join(p for p in (row["name"], row["surname"]) if p))
        return schema

    def _counted(self, insert: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable:
        """Wrap an insert resolver: stop-after-failure (gql_ug), slow_commit hold, counters."""

        def resolve(_root: Any, info: Any, **kwargs: Any) -> dict[str, Any]:
            ctx: dict[str, Any] = info.context if isinstance(info.context, dict) else {}
            if ctx.get("stop_on_error") and ctx.get("failed"):
                raise NotRun("not run: an earlier field failed")
            (obj,) = kwargs.values()
            key = entity_key(obj)
            self.counter("uois", key, "received")
            with self._flights_lock:
                if self._flights.get(key):
                    self.counter("uois", key, "races")
                self._flights[key] = self._flights.get(key, 0) + 1
            try:
                hold, ctx["hold"] = ctx.get("hold", 0.0), 0.0
                time.sleep(hold)
                result = insert(obj)
            except Exception as exc:
                ctx["failed"] = True
                unique = isinstance(exc, DbError) and exc.kind == "unique"
                self.counter("uois", key, "duplicates" if unique else "rejected")
                raise
            finally:
                with self._flights_lock:
                    self._flights[key] -= 1
                    if not self._flights[key]:
                        del self._flights[key]
            accepted = result["msg"] != "fail"
            self.counter("uois", key, "accepted" if accepted else "duplicates")
            if accepted:
                self.counter("uois", key, "updated" if insert.__name__.endswith("Update")
                             else "inserted")
            return result

        return resolve

    def _rows(self, table: str, where: str = "TRUE", params: list[Any] | None = None, *,
              order: str = "seq", skip: int | None = 0, limit: int | None = 10) -> list[dict]:
        names = COLUMNS[table]
        select = ", ".join(f"{col} AS \"{name}\"" for name, col in names.items())
        rows = self.store.query(
            f"SELECT {select} FROM {table} WHERE {where} ORDER BY {order} LIMIT ? OFFSET ?",
            [*(params or []), 10 if limit is None else limit, skip or 0])
        return rows

    def _get(self, table: str, key: Any) -> dict[str, Any] | None:
        rows = self._rows(table, "id=?", [str(key)], limit=1)
        return rows[0] if rows else None

    def _insert(self, table: str, obj: dict[str, Any], refs: dict[str, str]) -> dict[str, Any]:
        """Insert one row checking the primary key and foreign keys (refs: field -> table)."""
        row = {**obj, "id": obj.get("id") or str(uuid.uuid4()), "lastchange": now()}
        names = COLUMNS[table]
        short = table.removeprefix("uois_")
        tail = _sql_tail(short, row, names)
        with self.store.atomic() as st:
            if st.scalar(f"SELECT count(*) FROM {table} WHERE id=?", (row["id"],)):
                raise unique_violation(short, row["id"], tail)
            for name, other in refs.items():
                if row.get(name) is not None and not st.scalar(
                        f"SELECT count(*) FROM {other} WHERE id=?", (row[name],)):
                    raise fk_violation(short, names[name], row[name],
                                       other.removeprefix("uois_"), tail)
            cols = [n for n in names if n in row]
            st.query(f"INSERT INTO {table} ({', '.join(names[c] for c in cols)}, seq) "
                     f"VALUES ({', '.join('?' for _ in cols)}, nextval('uois_seq'))",
                     [row[c] for c in cols])
        return self._get(table, row["id"]) or row

    def _userInsert(self, user: dict[str, Any]) -> dict[str, Any]:
        row = self._insert("uois_users", user, {})
        return {"id": row["id"], "msg": "ok", "user": row}

    def _groupInsert(self, group: dict[str, Any]) -> dict[str, Any]:
        refs = {"grouptypeId": "uois_grouptypes", "mastergroupId": "uois_groups"}
        row = self._insert("uois_groups", group, refs)
        return {"id": row["id"], "msg": "ok", "group": row}

    def _membershipInsert(self, membership: dict[str, Any]) -> dict[str, Any]:
        refs = {"userId": "uois_users", "groupId": "uois_groups"}
        row = self._insert("uois_memberships", membership, refs)
        return {"id": row["id"], "msg": "ok", "membership": row}

    def _externalidInsert(self, ext: dict[str, Any]) -> dict[str, Any]:
        triple = [ext["innerId"], ext["typeidId"], ext["outerId"]]
        existing = self._rows("uois_externalids", "inner_id=? AND typeid_id=? AND outer_id=?",
                              triple, limit=1)
        if existing:
            return {"id": existing[0]["id"], "msg": "fail", "externalid": existing[0]}
        row = self._insert("uois_externalids", ext, {"typeidId": "uois_externalidtypes"})
        return {"id": row["id"], "msg": "ok", "externalid": row}

    def _page(self, table: str, where: dict[str, Any] | None, orderby: str | None,
              desc: bool | None, skip: int | None, limit: int | None) -> list[dict[str, Any]]:
        names, clauses, params = COLUMNS[table], [], []
        for field, ops in (where or {}).items():
            for op, value in (ops or {}).items():
                if value is None:
                    continue
                clauses.append({"_eq": "{c} = ?", "_in": "list_contains(?, {c})",
                                "_ilike": "{c} ILIKE ?"}[op].format(c=names[field]))
                params.append(value)
        if orderby is not None and orderby not in names:
            raise GraphQLError(f"orderby: unknown field {orderby!r}")
        order = f"{names[orderby] if orderby else 'seq'} {'DESC' if desc else 'ASC'}, seq"
        return self._rows(table, " AND ".join(clauses) or "TRUE", params, order=order,
                          skip=skip, limit=limit)

    def _userById(self, _root: Any, _info: Any, id: str) -> dict[str, Any] | None:
        return self._get("uois_users", id)

    def _userPage(self, _root: Any, _info: Any, where: Any = None, orderby: str | None = None,
                  desc: bool | None = None, skip: int = 0, limit: int = 10) -> list[dict]:
        return self._page("uois_users", where, orderby, desc, skip, limit)

    def _groupPage(self, _root: Any, _info: Any, where: Any = None, orderby: str | None = None,
                   desc: bool | None = None, skip: int = 0, limit: int = 10) -> list[dict]:
        return self._page("uois_groups", where, orderby, desc, skip, limit)

    def _membershipPage(self, _root: Any, _info: Any, where: Any = None,
                        orderby: str | None = None, desc: bool | None = None, skip: int = 0,
                        limit: int = 10) -> list[dict]:
        return self._page("uois_memberships", where, orderby, desc, skip, limit)

    def _internalId(self, _root: Any, _info: Any, typeidId: str, outerId: str) -> str | None:
        rows = self._rows("uois_externalids", "typeid_id=? AND outer_id=?", [typeidId, outerId],
                          limit=1)
        return rows[0]["innerId"] if rows else None

    def _externalIds(self, _root: Any, _info: Any, innerId: str,
                     typeidId: str | None = None) -> list[dict[str, Any]]:
        if typeidId is None:
            return self._rows("uois_externalids", "inner_id=?", [innerId], limit=10_000)
        return self._rows("uois_externalids", "inner_id=? AND typeid_id=?", [innerId, typeidId],
                          limit=10_000)
