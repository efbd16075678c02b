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
- Bodies, before any auth check, as FastAPI reads them: one that is not UTF-8 (gzip, the
  services do not decode it) answers 400 `{"detail": "There was an error parsing the
  body"}`; one that is not JSON 422 `json_invalid`; a form-encoded login 422
  `model_attributes_type` (second round). GET /api/gql answers 405 in plain text.
- Which service answers is decided by the document's first root field, as the front end
  routes it: userInsert, groupInsert, membershipInsert, groupTypeInsert and their reads go
  to gql_ug, externalidInsert, externaltypeidInsert, internalId and the external-id reads
  to gql_externalids (a document that does not parse: the first such name in its text).
- gql_ug: aliased fields run in order; at the first failing field the answer is
  `{"data": null, "errors": [{"msg": "<database error text>"}]}` with no `path` and no
  `locations`; the fields before it stay committed, the fields after it are not run. Syntax,
  validation and missing-variable errors answer `{"errors": [{"msg": "<text>\n\nGraphQL
  request:1:23 ..."}]}` (no `data`, `message` or `locations`). Error texts end with the
  GraphQL excerpt (graphql-core's printed error).
- gql_externalids: the failing field is null in `data` and the others run; its error has
  `msg`, `locations` as a list of [line, column] pairs and `path`, plus the extra keys
  `nodes`, `source`, `original_error` and `msg_e` (second round).
- Database errors are never HTTP errors: HTTP 200 with the errors above (see uois_schema.py
  for their texts).
"""

from __future__ import annotations

import json
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
from elt.sandbox.uois_schema import Counter, NotRun, Resolvers, entity_key, now, python_repr
from elt.sandbox.wire import (
    Reply,
    Request,
    Response,
    internal_error,
    json_response,
    parse_json,
    text_response,
)

USERNAME = "john.newbie@world.com"
PASSWORD = "john.newbie@world.com"
USER_ID = "2d9dc5ca-a4a2-11ed-b9df-0242ac120003"
KNOWN_USERS = {USERNAME: USER_ID}
SECRET = "sandbox-uois-secret"
TOKEN_TTL = 3600
KEY_TTL = 300
PARSE_ERROR = {"detail": "There was an error parsing the body"}
UG_FIELDS = {"userInsert", "groupInsert", "membershipInsert", "userById", "userPage",
             "groupPage", "membershipPage", "userUpdate", "groupUpdate", "groupTypeInsert",
             "groupTypeById", "groupTypePage"}
EXTERNALID_FIELDS = {"externalidInsert", "externaltypeidInsert", "internalId", "externalIds",
                     "externalidtypeById", "externalidtypePage"}
_NAME = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")


def service_of(query: str) -> str:
    """`ug` or `externalids`: the service the document's first root field belongs to."""
    try:
        doc = parse(query)
    except GraphQLError:  # the first field name the text holds; gql_ug when none
        names = (n for n in _NAME.findall(query) if n in UG_FIELDS | EXTERNALID_FIELDS)
        return "externalids" if next(names, None) in EXTERNALID_FIELDS else "ug"
    for definition in doc.definitions:
        if isinstance(definition, OperationDefinitionNode):
            for sel in definition.selection_set.selections:
                if isinstance(sel, FieldNode):
                    return "ug" if sel.name.value in UG_FIELDS else "externalids"
    return "externalids"


def _extended(error: GraphQLError) -> dict[str, Any]:
    """gql_externalids' error: msg, locations as [line, column] pairs, path, and its
    serialised exception attributes."""
    original = error.original_error
    return {"msg": str(error), "locations": [[loc.line, loc.column]
                                             for loc in error.locations or ()],
            "path": error.path, "nodes": None, "source": None,
            "original_error": None if original is None else str(original),
            "msg_e": error.message}


_NOT_PROVIDED = re.compile(r"Variable '(\$\w+)' has invalid value: Expected a value of "
                           r"non-null type '([^']+)' to be provided\.")


def _worded(error: GraphQLError) -> str:
    """The printed error as gql_ug's graphql-core words it (a missing variable: "Variable
    '$x' of required type 'T!' was not provided.")."""
    return _NOT_PROVIDED.sub(r"Variable '\1' of required type '\2' was not provided.",
                             str(error))


def json_invalid(exc: json.JSONDecodeError) -> Response:
    """FastAPI's 422 for a body that is not JSON."""
    return json_response(422, {"detail": [{"type": "json_invalid", "loc": ["body", exc.pos],
                                           "msg": "JSON decode error", "input": {},
                                           "ctx": {"error": exc.msg}}]})


def read_body(req: Request) -> Any:
    """The JSON body as FastAPI reads it; Reply with its answer when it cannot (400 for bytes
    that are not UTF-8, 422 for text that is not JSON)."""
    try:
        return parse_json(req.body)
    except UnicodeDecodeError:
        raise Reply(json_response(400, PARSE_ERROR)) from None
    except json.JSONDecodeError as exc:
        raise Reply(json_invalid(exc)) from None


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
        kind = (req.header("Content-Type") or "").split(";")[0].strip().lower()
        if kind in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return json_response(422, {"detail": [{
                "type": "model_attributes_type", "loc": ["body"],
                "msg": "Input should be a valid dictionary or object to extract fields from",
                "input": req.body.decode("utf-8", "replace")}]})
        try:
            body = read_body(req)
        except Reply as exc:
            return exc.response
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
            return text_response(405, "Method Not Allowed")
        try:
            body = read_body(req)
        except Reply as exc:
            return exc.response
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
            return json_response(200, {"data": None, "errors": [{"msg": str(errors[0])}]})
        if ug:  # syntax, validation, a missing variable: no data, no message, no locations
            return json_response(200, {"errors": [{"msg": _worded(e)} for e in errors]})
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
