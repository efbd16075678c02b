"""Column lineage through the models, with sqlglot's `lineage` one model at a time.

Each model's SQL is traced on its own (with the columns of the relations it reads, taken
from the staging database when it exists, so `SELECT *` expands); a column read from
another model is traced in that model next, until a seed or API source column (`raw.*`)
or a publication's answers (`published.*`) is reached. DuckDB's UNPIVOT and bare
`COLUMNS(...)` are rewritten first into SELECTs sqlglot can trace (unpivot.py). What is
still opaque stays in the model that uses it: there the column is matched by name in the
model's inputs, or stands for every column of them (`*`), said as such.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.lineage import Node as LNode
from sqlglot.lineage import lineage as sqlglot_lineage

from elt.graph.dag import Graph
from elt.lineage.fields import Field, builds_json
from elt.lineage.unpivot import rewrite as rewrite_for_lineage
from elt.project.modelfile import strip_sql

OPAQUE = "sqlglot cannot trace this column through the model's SQL (UNPIVOT, COLUMNS(*), ...)"
Scope = tuple[str, LNode]  # (model, the lineage node whose children its columns are)


@dataclass
class ColumnRef:
    """A column of a node and the columns it is computed from."""

    node: str
    kind: str
    column: str
    expression: str | None = None
    note: str | None = None
    inputs: list[ColumnRef] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"node": self.node, "kind": self.kind, "column": self.column}
        if self.expression is not None:
            out["expression"] = self.expression
        if self.note:
            out["note"] = self.note
        out["inputs"] = [i.to_dict() for i in self.inputs]
        return out

    def sources(self) -> list[ColumnRef]:
        """The leaves: seed and API source columns (or what could not be traced further)."""
        if not self.inputs:
            return [self]
        seen: dict[tuple[str, str], ColumnRef] = {}
        for i in self.inputs:
            for leaf in i.sources():
                seen.setdefault((leaf.node, leaf.column), leaf)
        return list(seen.values())


class Tracer:
    """Traces columns of the graph's models; results are cached per (model, column)."""

    def __init__(self, graph: Graph, schema: dict[str, dict[str, dict[str, str]]]) -> None:
        self.graph, self.schema = graph, schema
        self._cache: dict[tuple[str, str], ColumnRef] = {}
        self._roots: dict[tuple[str, str], LNode | None] = {}
        self._trees: dict[str, exp.Expression] = {}

    # -- sqlglot, one model at a time -------------------------------------------------
    def root(self, model: str, column: str) -> LNode | None:
        """sqlglot's lineage node of a model's output column (None: not traceable)."""
        key = (model, column)
        if key not in self._roots:
            try:
                self._roots[key] = sqlglot_lineage(column, self._tree(model),
                                                   schema=self.schema, dialect="duckdb")
            except (sqlglot.errors.SqlglotError, ValueError, KeyError, AttributeError,
                    IndexError, TypeError, RecursionError):
                self._roots[key] = None
        return self._roots[key]

    def _tree(self, model: str) -> exp.Expression:
        """The model's SQL parsed, UNPIVOT and COLUMNS(...) rewritten (unpivot.py)."""
        if model not in self._trees:
            tree = sqlglot.parse_one(strip_sql(self.graph.nodes[model].sql), dialect="duckdb")
            self._trees[model] = rewrite_for_lineage(tree, self._table_columns)
        return self._trees[model]

    def _table_columns(self, table: exp.Table) -> list[str] | None:
        target = self.graph.resolve_table(table.db.lower(), table.name.lower())
        return self.columns_of(target) if target in self.graph.nodes else None

    def columns_of(self, name: str) -> list[str]:
        node = self.graph.nodes[name]
        cols = self.schema.get(node.schema, {}).get(node.identifier)
        return list(cols) if cols else list(node.columns)

    # -- following columns -----------------------------------------------------------
    def trace(self, name: str, column: str) -> ColumnRef:
        """A column of any node: a model's is followed into its inputs, the rest are leaves."""
        key = (name, column)
        if key in self._cache:
            return self._cache[key]
        node = self.graph.nodes[name]
        ref = ColumnRef(name, node.kind, column)
        self._cache[key] = ref  # before recursing: a recursive CTE cannot loop forever
        if node.kind != "model":
            return ref
        root = self.root(name, column)
        if root is None:
            ref.note = OPAQUE
            ref.inputs = self._by_name(name, column)
            return ref
        defined = root.expression
        ref.expression = (defined.this if isinstance(defined, exp.Alias) else defined).sql(
            dialect="duckdb")
        ref.inputs = self._inputs(name, root)
        return ref

    def field_inputs(self, f: Field) -> list[ColumnRef]:
        """The columns a body field's expression reads, each traced to its sources."""
        if f.expression is None:
            return []
        model, node = f.context  # type: ignore[misc]
        names = {c.sql() for c in f.expression.find_all(exp.Column)}
        bare = {c.name for c in f.expression.find_all(exp.Column)}
        children = [c for c in node.downstream if c.name in names] or [
            c for c in node.downstream if c.name.rpartition(".")[2] in bare]
        if not children and not names:
            return []
        out: list[ColumnRef] = []
        for child in children or node.downstream:
            out += self._inputs(model, child)
        return _dedupe(out)

    def _inputs(self, model: str, start: LNode) -> list[ColumnRef]:
        """Leaves under a lineage node (inside one model) as traced ColumnRefs."""
        out: list[ColumnRef] = []
        for n in start.walk():
            if n.downstream:
                continue
            column = n.name.rpartition(".")[2]
            if isinstance(n.expression, exp.Table):
                target = self.graph.resolve_table(n.expression.db.lower(),
                                                  n.expression.name.lower())
                if target is not None:
                    out.append(self.trace(target, column))
                    continue
            if isinstance(n.expression, exp.Placeholder) or isinstance(n.expression, exp.Table):
                out += self._by_name(model, column)
            # anything else is a constant of the model's SQL: no input
        return _dedupe(out)

    def _by_name(self, model: str, column: str) -> list[ColumnRef]:
        """Where sqlglot gives up: the inputs holding a column of that name, else all of
        them as `*` (the column is computed from some of their columns)."""
        deps = [d for d in self.graph.nodes[model].depends_on
                if self.graph.nodes[d].kind in ("model", "seed", "api", "published")]
        named = {d: c for d in deps for c in self.columns_of(d) if c.lower() == column.lower()}
        if named:
            return [self.trace(d, c) for d, c in named.items()]
        return [ColumnRef(d, self.graph.nodes[d].kind, "*", note=OPAQUE) for d in deps]

    # -- the resolver the field reader uses --------------------------------------------
    def resolve(self, column: exp.Column, context: object) -> tuple[exp.Expression, Scope] | None:
        """A column of a body expression whose definition builds JSON: that definition."""
        model, node = context  # type: ignore[misc]
        for _ in range(20):  # `p.data_input AS data_input` -> the CTE column it renames
            name = column.sql()
            match = [c for c in node.downstream if c.name == name] or [
                c for c in node.downstream if c.name.rpartition(".")[2] == column.name]
            if len(match) != 1:
                return None
            child = match[0]
            if not isinstance(child.expression, exp.Alias):
                break
            defined = child.expression.this
            if builds_json(defined):
                return defined, (model, child)
            if not isinstance(defined, exp.Column):
                return None
            column, node = defined, child
        if isinstance(child.expression, exp.Table):
            target = self.graph.resolve_table(child.expression.db.lower(),
                                              child.expression.name.lower())
            if target and self.graph.nodes[target].kind == "model":
                return self._defined_in(target, column.name)
        return None

    def _defined_in(self, model: str, column: str) -> tuple[exp.Expression, Scope] | None:
        """A model's column built as JSON, maybe passed on unchanged from a subquery (an
        UNPIVOT's inner SELECT): the expression building it."""
        node = self.root(model, column)
        union: LNode | None = None  # UNION branches: the first's SQL, every branch's inputs
        for _ in range(20):
            if node is None:
                return None
            defined = node.expression.this if isinstance(node.expression, exp.Alias) \
                else node.expression
            if builds_json(defined):
                return defined, (model, union or node)
            if not isinstance(defined, exp.Column) or not node.downstream:
                return None
            if len(node.downstream) > 1:
                if not all(isinstance(c.expression, exp.Alias) for c in node.downstream):
                    return None
                union = union or node
            node = node.downstream[0]
        return None


def _dedupe(refs: list[ColumnRef]) -> list[ColumnRef]:
    seen: dict[tuple[str, str], ColumnRef] = {}
    for r in refs:
        seen.setdefault((r.node, r.column), r)
    return list(seen.values())
