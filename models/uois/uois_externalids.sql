/* elt
materialized: table
tags: [uois]
description: >
  External ids to register with externalidInsert ($inner_id, $outer_id, $type_id): the id
  a person has in another system. UOIS accepts one (type, outer id) for two inner ids, so
  an outer id must be registered once per type; exact duplicates of the export are dropped.
columns:
  inner_id:
    tests:
      - not_null
      - expression: {name: uois_externalids_inner_id_is_uuid,
                     sql: "regexp_full_match(inner_id, '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')"}
      - relationships: {to: uois_users, field: id, severity: warn}
  outer_id: {tests: [not_null]}
  type_id:
    tests: [not_null, {relationships: {to: uois_externalid_types, field: id}}]
tests:
  - unique: [type_id, outer_id]
*/
SELECT DISTINCT
    lower(trim(CAST(inner_id AS VARCHAR))) AS inner_id,
    trim(CAST(outer_id AS VARCHAR)) AS outer_id,
    lower(trim(CAST(typeid_id AS VARCHAR))) AS type_id
FROM raw.systemdata_externalids
ORDER BY type_id, outer_id
