/* elt
materialized: table
tags: [uois]
description: >
  Groups to create with groupInsert ($id, $name, $grouptype_id, $valid, $mastergroup_id).
  depth (0 for a root group) orders the sending: a group goes after its master group
  (`wave: depth` in publications.yml), or the service answers a foreign-key error.
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
  mastergroup_id:
    tests: [{relationships: {to: uois_groups, field: id}}]
*/
WITH RECURSIVE groups AS (
    SELECT DISTINCT
        lower(trim(CAST(id AS VARCHAR))) AS id,
        trim(name) AS name,
        lower(trim(CAST(grouptype_id AS VARCHAR))) AS grouptype_id,
        CAST(valid AS BOOLEAN) AS valid,
        nullif(lower(trim(CAST(mastergroup_id AS VARCHAR))), '') AS mastergroup_id
    FROM raw.systemdata_groups
),
levels (id, depth) AS (
    SELECT id, 0 FROM groups WHERE mastergroup_id IS NULL
    UNION ALL
    SELECT g.id, l.depth + 1
    FROM groups AS g JOIN levels AS l ON g.mastergroup_id = l.id
    WHERE l.depth < 100
)
SELECT g.*, coalesce((SELECT max(depth) FROM levels WHERE levels.id = g.id), 0) AS depth
FROM groups AS g
ORDER BY g.id
