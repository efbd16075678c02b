"""The UOIS GraphQL front end: /oauth/login3 and /api/gql (see uois-graphql.md).

Database errors are GraphQL errors on HTTP 200, as on the real services: a duplicate id
is a UniqueViolation and a membership naming a missing user or group a ForeignKeyViolation,
each on its own field with its `path`, so a publisher batching aliased fields must read
every field's outcome. gzip bodies are refused, because the real services do not decode them.
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from http.cookies import CookieError, SimpleCookie
from importlib import resources
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    GraphQLNonNull,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    build_schema,
    graphql_sync,
    parse,
    value_from_ast_untyped,
)

import elt.sandbox.tokens as tokens
from elt.sandbox.store import Store
from elt.sandbox.wire import Request, Response, json_response, parse_json

USERNAME = "john.newbie@world.com"
PASSWORD = "john.newbie@world.com"
USER_ID = "2d9dc5ca-a4a2-11ed-b9df-0242ac120003"
SECRET = "sandbox-uois-secret"
TOKEN_TTL = 3600
KEY_TTL = 300
UNAUTHENTICATED = {"data": None, "errors": ["Unauthenticated"]}
NOT_JSON = {"data": None, "errors": [{"message": "Unable to parse request body as JSON"}]}
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
}
Counter = Callable[[str, str, str], None]


class DbError(Exception):
    """An integrity error worded like asyncpg's, as the real services pass it through."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def unique_violation(table: str, key: str) -> DbError:
    return DbError("unique", (
        "(sqlalchemy.dialects.postgresql.asyncpg.IntegrityError) <class "
        "'asyncpg.exceptions.UniqueViolationError'>: duplicate key value violates unique "
        f'constraint "{table}_pkey"\nDETAIL:  Key (id)=({key}) already exists.'))


def fk_violation(table: str, column: str, key: str, other: str) -> DbError:
    return DbError("fk", (
        "(sqlalchemy.dialects.postgresql.asyncpg.IntegrityError) <class "
        "'asyncpg.exceptions.ForeignKeyViolationError'>: insert or update on table "
        f'"{table}" violates foreign key constraint "{table}_{column}_fkey"\n'
        f'DETAIL:  Key ({column})=({key}) is not present in table "{other}".'))


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


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def entity_key(obj: dict[str, Any]) -> str:
    """The stats key of a mutation argument: its id, else inner|type|outer for external ids."""
    if obj.get("id"):
        return str(obj["id"])
    return "|".join(str(obj.get(k)) for k in ("innerId", "typeidId", "outerId"))


class Uois:
    """login3 and the GraphQL endpoint, over the sandbox store."""

    def __init__(self, store: Store, counter: Counter, *, null_sink: bool = False) -> None:
        self.store = store
        self.counter = counter
        self.null_sink = null_sink
        self._keys: dict[str, float] = {}
        self._keys_lock = threading.Lock()
        self.schema = self._build_schema()

    # -- login ------------------------------------------------------------------------------
    def login(self, req: Request) -> Response:
        """The two-step login3 form: GET a key, POST it back with the credentials."""
        now = time.monotonic()
        with self._keys_lock:
            self._keys = {k: t for k, t in self._keys.items() if t > now}
            if req.method == "GET":
                key = secrets.token_urlsafe(16)
                self._keys[key] = now + KEY_TTL
                return json_response(200, {"key": key})
        if req.method != "POST":
            return json_response(405, {"detail": "Method Not Allowed"})
        try:
            body = parse_json(req.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return json_response(400, {"detail": "expected a JSON object"})
        with self._keys_lock:
            key_ok = self._keys.pop(str(body.get("key")), None) is not None
        if not key_ok:
            return json_response(401, {"detail": "invalid or expired key"})
        if body.get("username") != USERNAME or body.get("password") != PASSWORD:
            return json_response(401, {"detail": "invalid username or password"})
        claims = {"sub": USER_ID, "user_id": USER_ID, "email": USERNAME, "iss": "elt-sandbox-uois"}
        return json_response(200, {"token": tokens.sign(claims, SECRET, ttl=TOKEN_TTL)})

    def _authenticated(self, req: Request) -> bool:
        candidates = []
        header = req.header("Authorization") or ""
        if header.lower().startswith("bearer "):
            candidates.append(header[7:].strip())
        try:
            cookie = SimpleCookie(req.header("Cookie") or "")
        except CookieError:
            cookie = SimpleCookie()
        if "authorization" in cookie:
            value = cookie["authorization"].value
            candidates.append(value[7:] if value.lower().startswith("bearer ") else value)
        for token in candidates:
            try:
                tokens.verify(token, SECRET)
                return True
            except tokens.TokenError:
                continue
        return False

    # -- GraphQL ----------------------------------------------------------------------------
    def graphql(self, req: Request) -> Response:
        if req.method != "POST":
            return json_response(405, {"detail": "Method Not Allowed"})
        if not self._authenticated(req):
            return json_response(401, UNAUTHENTICATED)
        if req.gzipped:
            return json_response(400, NOT_JSON)
        try:
            body = parse_json(req.body)
        except ValueError:
            return json_response(400, NOT_JSON)
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return json_response(400, {"data": None, "errors": [
                {"message": "No GraphQL query found in the request"}]})
        variables = body.get("variables") if isinstance(body.get("variables"), dict) else {}
        if self.null_sink:
            fake = self._null_sink(body["query"], variables)
            if fake is not None:
                return json_response(200, {"data": fake})
        result = graphql_sync(self.schema, body["query"], variable_values=variables,
                              operation_name=body.get("operationName"))
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [e.formatted for e in result.errors]
            if result.data and all(v is None for v in result.data.values()):
                answer["data"] = None  # every root field failed: the real service nulls `data`
        return json_response(200, answer)

    def _null_sink(self, query: str, variables: dict[str, Any]) -> dict[str, Any] | None:
        """Answer a mutation with plausible "ok" results without executing it; None = execute."""
        try:
            doc = parse(query)
        except GraphQLError:
            return None
        ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
        if len(ops) != 1 or ops[0].operation != OperationType.MUTATION:
            return None
        data: dict[str, Any] = {}
        for field in ops[0].selection_set.selections:
            if not isinstance(field, FieldNode):
                return None
            args = [value_from_ast_untyped(a.value, variables) for a in field.arguments]
            obj = args[0] if args and isinstance(args[0], dict) else {}
            key = entity_key(obj)
            self.counter("uois", key, "received")
            self.counter("uois", key, "accepted")
            entity_id = obj.get("id") or str(uuid.uuid4())
            data[(field.alias or field.name).value] = _fake(field, entity_id)
        return data

    # -- schema and resolvers ---------------------------------------------------------------
    def _build_schema(self) -> GraphQLSchema:
        sdl = resources.files("elt.sandbox").joinpath("uois.graphql").read_text(encoding="utf-8")
        schema = build_schema(sdl)
        _set_scalar(schema, "UUID", _uuid, _uuid)
        _set_scalar(schema, "DateTime", _datetime_out, _datetime_in)
        mutation, query = schema.mutation_type, schema.query_type
        assert mutation is not None and query is not None
        for name, field in mutation.fields.items():
            # Root mutation fields fail one by one (contract): relax their non-null wrapper so
            # graphql-core nulls only the failing field and goes on with the next alias.
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
        """Wrap an insert resolver with the per-entity stats counters."""

        def resolve(_root: Any, _info: Any, **kwargs: Any) -> dict[str, Any]:
            (obj,) = kwargs.values()
            key = entity_key(obj)
            self.counter("uois", key, "received")
            try:
                result = insert(obj)
            except DbError as exc:
                self.counter("uois", key, "duplicates" if exc.kind == "unique" else "rejected")
                raise
            except Exception:
                self.counter("uois", key, "rejected")
                raise
            self.counter("uois", key, "duplicates" if result["msg"] == "fail" else "accepted")
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
        row = {**obj, "id": obj.get("id") or str(uuid.uuid4()), "lastchange": _now()}
        names = COLUMNS[table]
        with self.store.atomic() as st:
            if st.scalar(f"SELECT count(*) FROM {table} WHERE id=?", (row["id"],)):
                raise unique_violation(table.removeprefix("uois_"), row["id"])
            for name, other in refs.items():
                if row.get(name) is not None and not st.scalar(
                        f"SELECT count(*) FROM {other} WHERE id=?", (row[name],)):
                    raise fk_violation(table.removeprefix("uois_"), names[name], row[name],
                                       other.removeprefix("uois_"))
            cols = [n for n in names if n in row]
            st.query(f"INSERT INTO {table} ({', '.join(names[c] for c in cols)}, seq) "
                     f"VALUES ({', '.join('?' for _ in cols)}, nextval('uois_seq'))",
                     [row[c] for c in cols])
        return self._get(table, row["id"]) or row

    def _userInsert(self, user: dict[str, Any]) -> dict[str, Any]:
        row = self._insert("uois_users", user, {})
        return {"id": row["id"], "msg": "ok", "user": row}

    def _groupInsert(self, group: dict[str, Any]) -> dict[str, Any]:
        row = self._insert("uois_groups", group, {"mastergroupId": "uois_groups"})
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
        row = self._insert("uois_externalids", ext, {})
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


def _fake(field: FieldNode, entity_id: str) -> Any:
    """A null-sink result shaped like the selection: ids, msg "ok", lastchange now."""
    out: dict[str, Any] = {}
    for sel in field.selection_set.selections if field.selection_set else ():
        if not isinstance(sel, FieldNode):
            continue
        name, alias = sel.name.value, (sel.alias or sel.name).value
        if sel.selection_set is not None:
            out[alias] = _fake(sel, entity_id)
        elif name == "msg":
            out[alias] = "ok"
        elif name == "id":
            out[alias] = entity_id
        elif name == "lastchange":
            out[alias] = _now().isoformat()
        else:
            out[alias] = None
    return out
