"""The UOIS GraphQL front end: /oauth/login3 and /api/gql (see uois-graphql.md).

Every rule imitates a measured answer of the real services ("Measured on the real services"):
- Login (the mock OAuth server): GET /oauth/login3 answers `{"key"}`; POST with a used or
  unknown key answers 303 to `./login3`; an unknown user HTTP 500; a known user gets a
  token whatever the password. The token carries `token_type, access_token, expires_in
  (3600), refresh_token, user_id` and no `exp` (HS256 here, RS256 there).
- The token is read from `Authorization: Bearer` only: the production front end forwards
  that header alone, so a token sent only as the `authorization` cookie never reaches the
  gateway. Without a valid one: HTTP 401 `{"data": null, "errors": ["Unauthenticated", <query>,
  <variables>]}`, the query echoed back as received and the variables as the Python repr
  string of what gql_ug parsed (`"{'id_0': UUID('...'), 'email_0': 'a@b'}"`), as measured.
- A body that is not JSON, gzip-compressed ones included (the services do not decode gzip),
  answers 400 `{"detail": "There was an error parsing the body"}`, before any auth check.
- Which service answers is decided by the document's first root field, as the front end
  routes it: userInsert, groupInsert, membershipInsert and the user/group/membership reads
  go to gql_ug, externalidInsert, internalId and externalIds to gql_externalids.
- gql_ug: aliased fields run in order; at the first failing field the answer is
  `{"data": null, "errors": [{"msg": "<database error text>"}]}` with no `path` and no
  `locations`; the fields before it stay committed, the fields after it are not run.
- gql_externalids follows the GraphQL spec: the failing field is null in `data`, its error
  has `message`, `locations` and `path`, plus the extra keys `nodes`, `source`,
  `original_error` and `msg_e`.
- Database errors are never HTTP errors: HTTP 200 with the errors above (see uois_schema.py
  for their texts).
"""

from __future__ import annotations

import re
import secrets
import threading
import time
import uuid
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    graphql_sync,
    parse,
    value_from_ast_untyped,
)

import elt.sandbox.tokens as tokens
from elt.sandbox.store import Store
from elt.sandbox.uois_schema import Counter, NotRun, Resolvers, entity_key, now
from elt.sandbox.wire import Request, Response, internal_error, json_response, parse_json

USERNAME = "john.newbie@world.com"
PASSWORD = "john.newbie@world.com"
USER_ID = "2d9dc5ca-a4a2-11ed-b9df-0242ac120003"
KNOWN_USERS = {USERNAME: USER_ID}
SECRET = "sandbox-uois-secret"
TOKEN_TTL = 3600
KEY_TTL = 300
PARSE_ERROR = {"detail": "There was an error parsing the body"}
UG_FIELDS = {"userInsert", "groupInsert", "membershipInsert", "userById", "userPage",
             "groupPage", "membershipPage", "userUpdate", "groupUpdate"}


def service_of(query: str) -> str:
    """`ug` or `externalids`: the service the document's first root field belongs to."""
    try:
        doc = parse(query)
    except GraphQLError:
        return "externalids"  # syntax errors answer in the spec's format
    for definition in doc.definitions:
        if isinstance(definition, OperationDefinitionNode):
            for sel in definition.selection_set.selections:
                if isinstance(sel, FieldNode):
                    return "ug" if sel.name.value in UG_FIELDS else "externalids"
    return "externalids"


def _extended(error: GraphQLError) -> dict[str, Any]:
    """gql_externalids' error: the spec's keys plus its serialised exception attributes."""
    original = error.original_error
    return {**error.formatted, "nodes": None, "source": None,
            "original_error": None if original is None else str(original),
            "msg_e": error.message}


class Uois:
    """login3 and the GraphQL endpoint, over the sandbox store."""

    def __init__(self, store: Store, counter: Counter, *, null_sink: bool = False) -> None:
        self.store = store
        self.counter = counter
        self.null_sink = null_sink
        self._keys: dict[str, float] = {}
        self._keys_lock = threading.Lock()
        self.resolvers = Resolvers(store, counter)
        self.schema = self.resolvers.schema

    # -- login ------------------------------------------------------------------------------
    def login(self, req: Request) -> Response:
        """The two-step login3 form: GET a key, POST it back with the credentials."""
        current = time.monotonic()
        with self._keys_lock:
            self._keys = {k: t for k, t in self._keys.items() if t > current}
            if req.method == "GET":
                key = secrets.token_urlsafe(16)
                self._keys[key] = current + KEY_TTL
                return json_response(200, {"key": key})
        if req.method != "POST":
            return json_response(405, {"detail": "Method Not Allowed"})
        try:
            body = parse_json(req.body)
        except ValueError:
            return json_response(400, PARSE_ERROR)
        if not isinstance(body, dict):
            return internal_error()
        with self._keys_lock:
            key_ok = self._keys.pop(str(body.get("key")), None) is not None
        if not key_ok:
            return Response(303, headers={"Location": "./login3"})
        user_id = KNOWN_USERS.get(str(body.get("username")))
        if user_id is None:
            return internal_error()
        claims = {"token_type": "Bearer", "access_token": secrets.token_urlsafe(24),
                  "expires_in": TOKEN_TTL, "refresh_token": secrets.token_urlsafe(24),
                  "user_id": user_id}
        return json_response(200, {"token": tokens.sign(claims, SECRET)})

    def _authenticated(self, req: Request) -> bool:
        """Only `Authorization: Bearer` counts: the production front end in front of /api/gql
        forwards that header alone, so a token sent only as a cookie never arrives."""
        header = req.header("Authorization") or ""
        if not header.lower().startswith("bearer "):
            return False
        try:
            tokens.verify(header[7:].strip(), SECRET)
            return True
        except tokens.TokenError:
            return False

    # -- GraphQL ----------------------------------------------------------------------------
    def graphql(self, req: Request) -> Response:
        if req.method != "POST":
            return json_response(405, {"detail": "Method Not Allowed"})
        try:
            body = parse_json(req.body)
        except (ValueError, UnicodeDecodeError):
            return json_response(400, PARSE_ERROR)
        query = body.get("query") if isinstance(body, dict) else None
        variables = body.get("variables") if isinstance(body, dict) else None
        if not self._authenticated(req):
            return json_response(401, {"data": None, "errors": [
                "Unauthenticated", query, python_repr(variables)]})
        if not isinstance(query, str):
            return json_response(400, {"data": None, "errors": [
                {"message": "No GraphQL query found in the request"}]})
        variables = variables if isinstance(variables, dict) else {}
        if self.null_sink:
            fake = self._null_sink(query, variables)
            if fake is not None:
                return json_response(200, {"data": fake})
        ug = service_of(query) == "ug"
        hold = req.delay if req.commit_late else 0.0  # slow_commit: held inside the insert
        context = {"stop_on_error": ug, "failed": False, "hold": hold}
        result = graphql_sync(self.schema, query, variable_values=variables,
                              operation_name=body.get("operationName"), context_value=context)
        time.sleep(context["hold"])  # not taken by an insert (a query): held here
        errors = [e for e in result.errors or ()
                  if not isinstance(e.original_error, NotRun)]
        if not errors:
            return json_response(200, {"data": result.data})
        if ug and result.data is not None:  # an execution error: gql_ug's bare answer
            return json_response(200, {"data": None, "errors": [{"msg": errors[0].message}]})
        if ug:
            return json_response(200, {"data": None, "errors": [e.formatted for e in errors]})
        return json_response(200, {"data": result.data, "errors": [_extended(e) for e in errors]})

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
            out[alias] = now().isoformat()
        else:
            out[alias] = None
    return out



_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def python_repr(value: object) -> str:
    """gql_ug's echo of the variables: the Python values it parsed, UUIDs as UUID('...')."""
    if isinstance(value, str) and _UUID.fullmatch(value):
        return f"UUID('{value}')"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {python_repr(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(python_repr(v) for v in value) + "]"
    return repr(value)
