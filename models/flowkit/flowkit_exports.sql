/* elt
# a table: flowkit_datasets reads it, and a table keeps its changed rows for a partitioned
# reader (a view over raw.* with LIMIT would make every export change a full rebuild)
materialized: table
tags: [flowkit]
description: >
  One row per FlowKit export: the category it feeds, its spatial (srid) and temporal (trid)
  resolution, the key columns it must have and the columns it has (read from its first row,
  so an export without rows has no row here and nothing to publish).
tests:
  - unique: category_id
  - relationships: {column: category_id, to: flowkit_categories, field: category_id}
*/
SELECT r.category_id, r.srid, r.trid, r.key_columns, e.export_columns
FROM flowkit_resolutions AS r
JOIN (
    SELECT 'residents' AS category_id, json_keys(to_json(x)) AS export_columns
    FROM (SELECT * FROM raw.flowkit_residents LIMIT 1) AS x
    UNION ALL
    SELECT 'relocations', json_keys(to_json(x))
    FROM (SELECT * FROM raw.flowkit_relocations LIMIT 1) AS x
    UNION ALL
    SELECT 'presence', json_keys(to_json(x))
    FROM (SELECT * FROM raw.flowkit_presence LIMIT 1) AS x
    UNION ALL
    SELECT 'movements', json_keys(to_json(x))
    FROM (SELECT * FROM raw.flowkit_movements LIMIT 1) AS x
) AS e USING (category_id)
