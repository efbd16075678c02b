/* elt
materialized: table
tags: [uois]
description: >
  Group types the groups name that the export does not define: elt cannot create them, so
  the API source uois_grouptypes_found asks UOIS whether it has them (its own types); the
  groups of a type it lacks are refused (uois_groups_to_send). Empty for a whole export.
*/
SELECT DISTINCT grouptype_id AS id
FROM uois_groups
WHERE grouptype_id NOT IN (SELECT id FROM uois_grouptypes)
ORDER BY id
