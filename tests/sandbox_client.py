"""Talking to the sandbox in tests: tokens, GraphQL documents, sample bodies."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

import elt.sandbox.flowkit as flowkit
import elt.sandbox.tokens as tokens
from elt.sandbox.server import Sandbox
from elt.sandbox.uois_types import DEMO_EXTERNALIDTYPES, DEMO_GROUPTYPES

HTTP = httpx.Client(timeout=10)  # one client for the module: creating one costs ~50 ms
LABEL = "residents|residents.residents|3|2|2020-02-01 00:00:00"  # stats key of dataset()


def token(sb: Sandbox, name: str = "flowkit") -> str:
    auth = sb.endpoint_config(name)["auth"]
    body = {k: auth[k] for k in ("client_id", "client_secret", "audience")}
    r = HTTP.post(auth["token_url"], json={**body, "grant_type": "client_credentials"})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def bearer_from(url: str) -> dict[str, str]:
    """The updater's Authorization header from a sandbox known only by its URL."""
    body = {"client_id": "elt-sandbox-updater", "client_secret": flowkit.SECRET,
            "audience": flowkit.AUDIENCE, "grant_type": "client_credentials"}
    r = HTTP.post(f"{url}/oauth/token", json=body)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def bearer(sb: Sandbox, name: str = "flowkit") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sb, name)}"}


def forged(**claims: Any) -> dict[str, str]:
    """An Authorization header with a token signed by the sandbox's key, claims as given."""
    return {"Authorization": f"Bearer {tokens.sign(claims, flowkit.SECRET)}"}


def dataset(dt: str = "2020-02-01 00:00:00", data: Any = 544650, **meta: Any) -> dict[str, Any]:
    metadata = {"revision": "v0.1-demo", "category_id": "residents",
                "indicator_id": "residents.residents", "srid": 3, "trid": 2, "dt": dt, **meta}
    return {"metadata": {k: v for k, v in metadata.items() if v is not ...},
            "data_type": "single_location",
            "data_input": [{"spatial_unit_ids": ["HT0111-01"], "data": data}]}


def query_body(**kw: Any) -> dict[str, Any]:
    return {"category_id": "residents", "indicator_id": "residents.residents", "srid": 3,
            "trid": 2, "start_date": "2020-02", "duration": 3, **kw}


def uois_token(sb: Sandbox) -> str:
    auth = sb.endpoint_config("uois")["auth"]
    key = HTTP.get(auth["login_url"]).json()["key"]
    r = HTTP.post(auth["login_url"], json={"key": key, "username": auth["username"],
                                            "password": auth["password"]})
    assert r.status_code == 200, r.text
    return r.json()["token"]


def gql(sb: Sandbox, query: str, variables: dict[str, Any] | None = None,
        tok: str | None = None) -> httpx.Response:
    bearer = {"Authorization": f"Bearer {tok or uois_token(sb)}"}
    return HTTP.post(f"{sb.url}/api/gql", json={"query": query, "variables": variables or {}},
                     headers=bearer)


USER = """mutation ($id: UUID!, $name: String!, $surname: String!, $email: String!) {
  result: userInsert(user: {id: $id, name: $name, surname: $surname, email: $email}) {
    id msg result: user { id lastchange } } }"""
GROUP = """mutation ($id: UUID!, $name: String!, $grouptype_id: UUID!) {
  result: groupInsert(group: {id: $id, name: $name, grouptypeId: $grouptype_id}) {
    id msg result: group { id lastchange } } }"""
MEMBERSHIP = """mutation ($id: UUID!, $user_id: UUID!, $group_id: UUID!, $valid: Boolean) {
  result: membershipInsert(membership: {id: $id, userId: $user_id, groupId: $group_id,
                                        valid: $valid}) {
    id msg result: membership { id lastchange } } }"""
EXTERNALID = """mutation ($type_id: UUID!, $inner_id: UUID!, $outer_id: String!) {
  result: externalidInsert(externalid: {innerId: $inner_id, typeidId: $type_id,
                                        outerId: $outer_id}) {
    id msg result: externalid { id } } }"""
INTERNAL = """query ($type_id: UUID!, $outer_id: String!) {
  result: internalId(typeidId: $type_id, outerId: $outer_id) }"""


GROUPTYPE = DEMO_GROUPTYPES[0][0]  # types a fresh sandbox holds (groups, external ids of
EXTTYPE = DEMO_EXTERNALIDTYPES[0][0]  # other types fail on the foreign key)


def new_id() -> str:
    return str(uuid.uuid4())


def user_vars(uid: str | None = None) -> dict[str, str]:
    return {"id": uid or new_id(), "name": "John", "surname": "Newbie", "email": "j@n.org"}


def config(srid: bool = True) -> dict[str, Any]:
    spatial = {"label": "Communal section", "label_fr": "Section", "index": 3,
               "description": "", "boundaries": {}}
    return {
        "languages": [{"code": "en", "name": "English", "flag": "", "default": True}],
        "data_providers": [{"name": "Flowminder", "logo": "", "url": ""}],
        "categories": [{"category_id": c, "type": t} for c, t in
                       (("residents", "single_location"), ("relocations", "flow"))],
        "indicators": [{"category_id": "residents", "indicator_id": "residents.residents"},
                       {"category_id": "residents", "indicator_id": "residents.arrived"},
                       {"category_id": "relocations",
                        "indicator_id": "relocations.relocations"}],
        "temporal_resolutions": [{"trid": 2, "label": "Month"}, {"trid": 4, "label": "Day"}],
        "spatial_resolutions": [{**spatial, "srid": 3}] if srid else [spatial],
    }
