"""GraphQL schemas for checking bodies: a partial SDL file made buildable, and an
operation's variables as a JSON Schema (so schemasql.py checks them in DuckDB).

A service's SDL is often handed over in parts (the UOIS contract's `uois.graphql` is the
types elt sends, pasted from two places): a type repeated (two `type Mutation` blocks),
scalars not declared (`UUID`, `DateTime`) and types named but not given
(`UserGQLModel`, filter inputs). `build_partial` merges the repeats, declares the missing
scalars and stands in for the missing types (an input: a scalar taking any value; an
output: an object whose selections are not checked) and says which it added, so a document
is checked as far as the file allows instead of the file being refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import graphql
from graphql.language import ast

BUILTIN = {"String", "Int", "Float", "Boolean", "ID"}
# custom scalars whose values have a known shape (JSON Schema formats)
SCALAR_FORMATS = {"UUID": "uuid", "DateTime": "date-time", "Date": "date"}
_TYPE_DEFS = (ast.ObjectTypeDefinitionNode, ast.InputObjectTypeDefinitionNode,
              ast.InterfaceTypeDefinitionNode, ast.EnumTypeDefinitionNode,
              ast.ScalarTypeDefinitionNode, ast.UnionTypeDefinitionNode)


@dataclass
class Partial:
    schema: graphql.GraphQLSchema
    stubs: set[str] = field(default_factory=set)     # output types the file does not give
    notes: list[str] = field(default_factory=list)   # what was added, for messages


def _named(node: ast.TypeNode) -> str:
    while not isinstance(node, ast.NamedTypeNode):
        node = node.type  # type: ignore[attr-defined]
    return node.name.value


def _merge(doc: ast.DocumentNode) -> tuple[list[ast.DefinitionNode], list[str]]:
    """Definitions with a repeated object/input type merged into its first definition."""
    first: dict[str, ast.DefinitionNode] = {}
    out: list[ast.DefinitionNode] = []
    merged: list[str] = []
    for d in doc.definitions:
        name = d.name.value if isinstance(d, _TYPE_DEFS) else None
        if name is None or name not in first:
            if name is not None:
                first[name] = d
            out.append(d)
            continue
        kept = first[name]
        if type(kept) is not type(d) or not hasattr(d, "fields"):
            raise graphql.GraphQLError(f"type {name} is defined twice, differently")
        names = {f.name.value for f in kept.fields}
        fields = (*kept.fields, *(f for f in d.fields if f.name.value not in names))
        whole = type(kept)(**{**{k: getattr(kept, k) for k in kept.keys}, "fields": fields})
        out[out.index(kept)] = first[name] = whole
        merged.append(name)
    return out, sorted(set(merged))


def _references(defs: list[ast.DefinitionNode]) -> tuple[set[str], set[str]]:
    """Type names used as inputs (arguments, input fields) and as outputs (fields)."""
    inputs: set[str] = set()
    outputs: set[str] = set()
    for d in defs:
        if isinstance(d, ast.InputObjectTypeDefinitionNode | ast.InputObjectTypeExtensionNode):
            inputs |= {_named(f.type) for f in d.fields or ()}
        elif hasattr(d, "fields") and d.fields:
            for f in d.fields:
                outputs.add(_named(f.type))
                inputs |= {_named(a.type) for a in f.arguments or ()}
        if isinstance(d, ast.UnionTypeDefinitionNode):
            outputs |= {t.name.value for t in d.types or ()}
    return inputs, outputs


def build_partial(sdl: str) -> Partial:
    """The schema a (possibly partial) SDL text describes; raises GraphQLError."""
    defs, merged = _merge(graphql.parse(sdl))
    defined = {d.name.value for d in defs if isinstance(d, _TYPE_DEFS)}
    inputs, outputs = _references(defs)
    missing_out = sorted(outputs - defined - BUILTIN - set(SCALAR_FORMATS) - inputs)
    scalars = sorted((inputs | outputs) - defined - BUILTIN - set(missing_out))
    extra = "".join(f"scalar {s}\n" for s in scalars)
    extra += "".join(f"type {t} {{ _notInTheFile: String }}\n" for t in missing_out)
    document = ast.DocumentNode(definitions=(*defs, *graphql.parse(extra).definitions)) \
        if extra else ast.DocumentNode(definitions=tuple(defs))
    schema = graphql.build_ast_schema(document)
    notes = []
    if merged:
        notes.append(f"merged repeated types {', '.join(merged)}")
    known = [s for s in scalars if s in SCALAR_FORMATS]
    if known:
        notes.append(f"added scalars {', '.join(known)}")
    loose = [s for s in scalars if s not in SCALAR_FORMATS]
    if loose:
        notes.append(f"inputs not in the file, any value accepted: {', '.join(loose)}")
    if missing_out:
        notes.append(f"types not in the file, selections on them not checked: "
                     f"{', '.join(missing_out)}")
    return Partial(schema, set(missing_out), notes)


def about_stub(error: graphql.GraphQLError, stubs: set[str]) -> bool:
    """An error only because a type is missing from a partial file (not the document's)."""
    return any(f"on type '{s}'" in error.message for s in stubs)


# -- an operation's variables as a JSON Schema --------------------------------------------
def variables_schema(schema: graphql.GraphQLSchema,
                     definitions: Any) -> dict[str, Any]:
    """A JSON Schema of the variables object (a document with `$defs` for input types):
    non-null variables without default required, input objects closed, lists taking one
    value too (GraphQL's input coercion), Int a 32-bit integer."""
    defs: dict[str, Any] = {}
    props: dict[str, Any] = {}
    required: list[str] = []
    for d in definitions:
        name = d.variable.name.value
        kind = graphql.type_from_ast(schema, d.type)
        props[name] = {} if kind is None else _input(kind, defs)
        if isinstance(kind, graphql.GraphQLNonNull) and d.default_value is None:
            required.append(name)
    return {"type": "object", "required": required, "properties": props, "$defs": defs}


def _input(kind: Any, defs: dict[str, Any]) -> dict[str, Any]:
    if isinstance(kind, graphql.GraphQLNonNull):
        return _bare(kind.of_type, defs)
    bare = _bare(kind, defs)
    if not bare:
        return bare
    if "anyOf" in bare or "$ref" in bare:
        return {"anyOf": [{"type": "null"}, bare]}
    return {**bare, "nullable": True}


def _bare(kind: Any, defs: dict[str, Any]) -> dict[str, Any]:
    if isinstance(kind, graphql.GraphQLList):
        item = _input(kind.of_type, defs)
        return {"anyOf": [{"type": "array", "items": item}, item]} if item else {}
    if isinstance(kind, graphql.GraphQLEnumType):
        return {"type": "string", "enum": list(kind.values)}
    if isinstance(kind, graphql.GraphQLInputObjectType):
        if kind.name not in defs:
            defs[kind.name] = {}  # before the fields: a recursive input refers to itself
            defs[kind.name] = {
                "type": "object", "additionalProperties": False,
                "required": [n for n, f in kind.fields.items()
                             if isinstance(f.type, graphql.GraphQLNonNull)
                             and f.default_value is graphql.Undefined],
                "properties": {n: _input(f.type, defs) for n, f in kind.fields.items()}}
        return {"$ref": f"#/$defs/{kind.name}"}
    name = getattr(kind, "name", "")
    if name == "String":
        return {"type": "string"}
    if name == "Int":
        return {"type": "integer", "format": "int32"}
    if name == "Float":
        return {"type": "number"}
    if name == "Boolean":
        return {"type": "boolean"}
    if name == "ID":
        return {"type": ["string", "integer"]}
    if name in SCALAR_FORMATS:
        return {"type": "string", "format": SCALAR_FORMATS[name]}
    return {}  # a custom scalar: the service parses it
