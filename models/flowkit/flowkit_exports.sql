/* elt
materialized: view
tags: [flowkit]
description: >
  One row per FlowKit export: the category it feeds, its spatial (srid) and temporal (trid)
  resolution, the key columns it must have and the columns it has (read from its first row,
  so an export without rows has no row here and nothing to publish).
tests:
  - unique: category_id
  - relationships: {column: category_id, to: flowkit_categories, field: category_id}
*/
SELECT 'residents' AS category_id, 3 AS srid, 2 AS trid, ['month', 'pcod'] AS key_columns,
       json_keys(to_json(r)) AS export_columns
FROM (SELECT * FROM raw.flowkit_residents LIMIT 1) AS r
UNION ALL
SELECT 'relocations', 3, 2, ['date', 'pcod_from', 'pcod_to'], json_keys(to_json(r))
FROM (SELECT * FROM raw.flowkit_relocations LIMIT 1) AS r
UNION ALL
SELECT 'presence', 3, 4, ['date', 'pcod'], json_keys(to_json(r))
FROM (SELECT * FROM raw.flowkit_presence LIMIT 1) AS r
UNION ALL
SELECT 'movements', 3, 4, ['date', 'pcod_from', 'pcod_to'], json_keys(to_json(r))
FROM (SELECT * FROM raw.flowkit_movements LIMIT 1) AS r
