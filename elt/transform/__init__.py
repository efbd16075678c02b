"""Running the DAG: materializations, data tests, node state."""
