"""The project as a DAG: node discovery, sqlglot dependencies, selection."""
