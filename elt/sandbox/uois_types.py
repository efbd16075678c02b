"""The UOIS type tables over the sandbox store: group types (gql_ug), external-id types
(gql_externalids).

Imitated behaviour (uois-graphql.md, "Measured on the real services, second round"): the
services ship none of an export's types, only their own demo ones (DEMO_GROUPTYPES,
DEMO_EXTERNALIDTYPES, present in every fresh store); groups and external ids naming another
type fail on the foreign key (uois_schema.py) until its row exists. The contract file lists
no mutation for the types; these follow the services' sources: `groupTypeInsert(groupType:
{id, name, nameEn})` and `externaltypeidInsert(externaltypeid: {id, name, nameEn,
urlformat, categoryId})` answer `{id, msg, groupType|externaltypeid}`, a duplicate id fails
with UniqueViolation like any insert; `groupTypeById` / `groupTypePage` and
`externalidtypeById` / `externalidtypePage` read them.
"""

from __future__ import annotations

from typing import Any

from elt.sandbox.store import Store

DEMO_GROUPTYPES = (("cd49e157-610c-11ed-9312-001a7dda7110", "demo: university", "university"),
                   ("cd49e155-610c-11ed-844e-001a7dda7110", "demo: faculty", "faculty"))
DEMO_EXTERNALIDTYPES = (("d00ec0b6-f27c-497b-8fc8-ddb4e2460717", "demo: UČO", "personal id"),)


def seed_demo_types(store: Store) -> None:
    """What a fresh installation holds: its own demo types, none of an export's."""
    for table, rows in (("uois_grouptypes", DEMO_GROUPTYPES),
                        ("uois_externalidtypes", DEMO_EXTERNALIDTYPES)):
        for type_id, name, name_en in rows:
            store.query(f"INSERT INTO {table} (id, name, name_en, lastchange, seq) VALUES "
                        "(?, ?, ?, now()::TIMESTAMP, nextval('uois_seq')) ON CONFLICT DO NOTHING",
                        (type_id, name, name_en))


class Types:
    """Mixed into uois_schema.Resolvers: the type resolvers (named `_<field>`)."""

    def _insert(self, table: str, obj: dict[str, Any], refs: dict[str, str]) -> dict[str, Any]:
        raise NotImplementedError  # Resolvers provides it

    def _get(self, table: str, key: Any) -> dict[str, Any] | None:
        raise NotImplementedError

    def _page(self, table: str, where: dict[str, Any] | None, orderby: str | None,
              desc: bool | None, skip: int | None, limit: int | None) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _groupTypeInsert(self, group_type: dict[str, Any]) -> dict[str, Any]:
        row = self._insert("uois_grouptypes", group_type, {})
        return {"id": row["id"], "msg": "ok", "groupType": row}

    def _externaltypeidInsert(self, type_row: dict[str, Any]) -> dict[str, Any]:
        row = self._insert("uois_externalidtypes", type_row, {})
        return {"id": row["id"], "msg": "ok", "externaltypeid": row}

    def _groupTypeById(self, _root: Any, _info: Any, id: str) -> dict[str, Any] | None:
        return self._get("uois_grouptypes", id)

    def _groupTypePage(self, _root: Any, _info: Any, skip: int = 0, limit: int = 10,
                       where: Any = None) -> list[dict[str, Any]]:
        return self._page("uois_grouptypes", where, None, None, skip, limit)

    def _externalidtypeById(self, _root: Any, _info: Any, id: str) -> dict[str, Any] | None:
        return self._get("uois_externalidtypes", id)

    def _externalidtypePage(self, _root: Any, _info: Any, skip: int = 0, limit: int = 10,
                            where: Any = None) -> list[dict[str, Any]]:
        return self._page("uois_externalidtypes", where, None, None, skip, limit)
