/* elt
materialized: table
tags: [flowkit]
description: >
  Export columns that config.json does not declare as indicators of their category: they
  are not published (the backend would not know them). A warning lists them.
tests:
  - expression: {name: flowkit_undeclared_columns_not_published, sql: "column_name IS NULL",
                 severity: warn}
*/
WITH present AS (
    SELECT category_id, key_columns, unnest(export_columns) AS column_name
    FROM flowkit_exports
)
SELECT p.category_id, p.column_name
FROM present AS p
ANTI JOIN flowkit_indicators AS i ON i.category_id = p.category_id AND i.column_name = p.column_name
WHERE NOT list_contains(p.key_columns, p.column_name)
  AND NOT starts_with(p.column_name, '_elt_')
ORDER BY p.category_id, p.column_name
