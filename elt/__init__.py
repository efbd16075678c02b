"""elt: raw exports -> DuckDB staging -> SQL models -> REST/GraphQL backends."""

__version__ = "0.1.0"
