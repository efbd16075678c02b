/* elt
materialized: table
tags: [uois]
description: >
  Memberships to create with membershipInsert ($id, $user_id, $group_id, $valid), once
  their user and group exist; `refused` (never sent) when their group is refused.
columns:
  id:
    tests:
      - not_null
      - unique
      - expression: {name: uois_memberships_id_is_uuid,
                     sql: "regexp_full_match(id, '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')"}
  user_id:
    tests: [not_null, {relationships: {to: uois_users, field: id}}]
  group_id:
    tests: [not_null, {relationships: {to: uois_groups, field: id}}]
*/
WITH memberships AS (
    SELECT DISTINCT
        lower(trim(CAST(id AS VARCHAR))) AS id,
        lower(trim(CAST(user_id AS VARCHAR))) AS user_id,
        lower(trim(CAST(group_id AS VARCHAR))) AS group_id,
        CAST(valid AS BOOLEAN) AS valid
    FROM raw.systemdata_memberships
)
SELECT m.*, 'group ' || m.group_id || ' is refused: ' || g.refused AS refused
FROM memberships AS m
LEFT JOIN uois_groups_to_send AS g ON g.id = m.group_id
ORDER BY m.id
