/* elt
materialized: table
tags: [uois]
description: >
  The export's group types, to create with groupTypeInsert ($id, $name, $name_en) before any
  group: a fresh UOIS has none of them, and a group of an unknown type fails on a foreign key.
columns:
  id:
    tests:
      - not_null
      - unique
      - expression: {name: uois_grouptypes_id_is_uuid,
                     sql: "regexp_full_match(id, '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')"}
  name: {tests: [not_null]}
*/
SELECT DISTINCT
    lower(trim(CAST(id AS VARCHAR))) AS id,
    trim(name) AS name,
    trim(name_en) AS name_en
FROM raw.systemdata_grouptypes
ORDER BY id
