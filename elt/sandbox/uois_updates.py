"""gql_ug's userUpdate / groupUpdate over the sandbox store (optimistic concurrency).

Imitated behaviour (uois-graphql.md, "Measured on the real services, second round"): an
update names the row's current `lastchange`; a stale value (the row changed since it was
read) or an unknown id is refused with `msg: "fail"` (gql_ug's loader finds no row to update
and the resolver answers "fail" with the id asked) and nothing is stored; otherwise the
fields given (not null) are written, `lastchange` moves, and the answer is `msg: "ok"` with
the row as it is now.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from elt.sandbox.store import Store


class Updates:
    """Mixed into uois_schema.Resolvers: the update resolvers (named `_<field>`)."""

    store: Store
    columns: dict[str, dict[str, str]] = {}  # uois_schema.COLUMNS, set by Resolvers

    def _get(self, table: str, key: Any) -> dict[str, Any] | None:  # Resolvers provides it
        raise NotImplementedError

    def _update(self, table: str, obj: dict[str, Any]) -> tuple[str, dict[str, Any] | None]:
        names = self.columns[table]
        given = {k: v for k, v in obj.items() if k not in ("id", "lastchange") and v is not None
                 and k in names}
        with self.store.atomic() as st:
            current = st.query(f"SELECT lastchange FROM {table} WHERE id=?", (str(obj["id"]),))
            if not current or current[0]["lastchange"] != obj["lastchange"]:
                return "fail", None
            sets = ", ".join(f"{names[k]}=?" for k in given)
            st.query(f"UPDATE {table} SET {sets + ', ' if sets else ''}lastchange=? WHERE id=?",
                     [*given.values(), datetime.now(UTC).replace(tzinfo=None), str(obj["id"])])
        return "ok", None

    def _userUpdate(self, user: dict[str, Any]) -> dict[str, Any]:
        msg, _ = self._update("uois_users", user)
        return {"id": str(user["id"]), "msg": msg, "user": self._get("uois_users", user["id"])}

    def _groupUpdate(self, group: dict[str, Any]) -> dict[str, Any]:
        msg, _ = self._update("uois_groups", group)
        return {"id": str(group["id"]), "msg": msg,
                "group": self._get("uois_groups", group["id"])}
