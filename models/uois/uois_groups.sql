/* elt
materialized: table
tags: [uois]
description: >
  Groups to create with groupInsert ($id, $name, $grouptype_id); valid comes along as
  the export has it.
columns:
  id:
    tests:
      - not_null
      - unique
      - expression: {name: uois_groups_id_is_uuid,
                     sql: "regexp_full_match(id, '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')"}
  name: {tests: [not_null]}
  grouptype_id:
    tests:
      - not_null
      - expression: {name: uois_groups_grouptype_id_is_uuid,
                     sql: "regexp_full_match(grouptype_id, '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')"}
*/
SELECT DISTINCT
    lower(trim(CAST(id AS VARCHAR))) AS id,
    trim(name) AS name,
    lower(trim(CAST(grouptype_id AS VARCHAR))) AS grouptype_id,
    CAST(valid AS BOOLEAN) AS valid
FROM raw.systemdata_groups
ORDER BY id
