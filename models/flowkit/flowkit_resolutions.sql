/* elt
materialized: view
tags: [flowkit]
description: >
  Per FlowKit category (one export each): its spatial (srid) and temporal (trid)
  resolution and the key columns its export must have (flowkit_exports adds the columns
  each export has).
tests:
  - unique: category_id
*/
SELECT * FROM (VALUES
    ('residents', 3, 2, ['month', 'pcod']),
    ('relocations', 3, 2, ['date', 'pcod_from', 'pcod_to']),
    ('presence', 3, 4, ['date', 'pcod']),
    ('movements', 3, 4, ['date', 'pcod_from', 'pcod_to'])
) AS r(category_id, srid, trid, key_columns)
