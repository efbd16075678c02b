"""Row-level `depends_on`: a row waits until the upstream row it names is acknowledged.

`depends_on: {uois_groups: {group_id: id}}` says each row of this publication needs the row
of `uois_groups` whose key `id` equals its `group_id`. One group that failed then holds back
only its own memberships (reason `waiting`, counted in `elt status`, named by the publish),
not the whole publication; and the rule holds whether or not the upstream publication is
selected in this run (`elt publish -s uois_externalids` sends no id of a user UOIS does not
have yet). The test is SQL, part of the pending set's classification: an anti-join of the
model against the upstream's acknowledged ledger rows, never a loop over rows.
"""

from __future__ import annotations

from typing import Any

from elt.core.db import literal, quote

# (upstream publication, ((this model's column, upstream key column), ...)), key order
Wait = tuple[str, tuple[tuple[str, str], ...]]
FIRST = 3  # rows named in the publish's message


def parse(raw: Any, fail: Any) -> tuple[list[str], list[tuple[str, dict[str, str]]]]:
    """`depends_on:` as written (a name, a list of names, or a mapping name -> null |
    {column: upstream key column}) -> (every upstream name, the row-level ones)."""
    if raw is None:
        return [], []
    if isinstance(raw, str):
        return [raw], []
    if isinstance(raw, list) and all(isinstance(d, str) for d in raw):
        return list(raw), []
    if not isinstance(raw, dict):
        raise fail("`depends_on:` must be a list of publication names, or a mapping "
                   "publication -> {this model's column: that publication's key column}")
    names, rows = [], []
    for name, columns in raw.items():
        names.append(str(name))
        if columns is None:
            continue
        if not isinstance(columns, dict) or not columns or not all(
                isinstance(k, str) and isinstance(v, str) and k and v
                for k, v in columns.items()):
            raise fail(f"`depends_on: {{{name}: ...}}` must map this model's columns to "
                       f"{name}'s key columns, e.g. {{group_id: id}}")
        rows.append((str(name), dict(columns)))
    return names, rows


def resolve(name: str, columns: dict[str, str], upstream_key: tuple[str, ...],
            fail: Any) -> Wait:
    """The mapping in the upstream's key order; it must name each key column once."""
    named = sorted(columns.values())
    if named != sorted(upstream_key) or len(set(named)) != len(named):
        raise fail(f"`depends_on: {{{name}: ...}}` maps to {', '.join(named)}; it must map "
                   f"one column of this model to each key column of {name} "
                   f"({', '.join(upstream_key)})")
    by_key = {theirs: mine for mine, theirs in columns.items()}
    return name, tuple((by_key[k], k) for k in upstream_key)


def hard_deps(pubs: dict[str, Any], deps: dict[str, set[str]]) -> dict[str, set[str]]:
    """The dependencies whose failure skips a publication whole: all but the row-level ones
    (after a failed upstream only the rows that need its rows wait)."""
    return {n: d - {u for u, _ in pubs[n].waits_on} if n in pubs else set(d)
            for n, d in deps.items()}


def waiting_sql(waits: tuple[Wait, ...], ledger: str) -> str:
    """SQL over the model's row (unqualified columns): NULL when every upstream row it names
    is acknowledged, else which it waits for (`uois_groups ["g1"]`; several: `; `). A NULL
    in a mapped column names no upstream row: nothing to wait for."""
    if not waits:
        return "NULL::VARCHAR"
    parts = []
    for upstream, pairs in waits:
        given = " AND ".join(f"{quote(mine)} IS NOT NULL" for mine, _ in pairs)
        match = " AND ".join(f"u.key_json->>{literal(theirs)} = {quote(mine)}::VARCHAR"
                             for mine, theirs in pairs)
        named = ", ".join(quote(mine) for mine, _ in pairs)
        parts.append(
            f"CASE WHEN {given} AND NOT EXISTS (SELECT 1 FROM {ledger} AS u WHERE "
            f"u.publication = {literal(upstream)} AND u.status IN ('acknowledged', "
            f"'already_there') AND NOT coalesce(u.deleted, false) AND {match}) "
            f"THEN {literal(upstream + ' ')} || json_array({named})::VARCHAR END")
    return f"nullif(concat_ws('; ', {', '.join(parts)}), '')"


def message(publication: str, n: int, first: list[str], waits: tuple[Wait, ...],
            selected: set[str]) -> str:
    """What publish says of the rows that wait: how many, the first few, what to do."""
    upstream = [u for u, _ in waits]
    unselected = [u for u in upstream if u not in selected]
    hint = (f"; {', '.join(unselected)} not selected: `-s +{publication}` publishes "
            "it first" if unselected else "; they go once those are acknowledged")
    return (f"publication {publication}: {n:,} row(s) wait for rows of "
            f"{', '.join(upstream)} not acknowledged yet (first: {', '.join(first)}){hint}")
