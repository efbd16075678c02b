/* elt
materialized: table
tags: [uois]
description: >
  External-id types the export's ids name that its externalidtypes do not define: the API
  source uois_externalidtypes_found asks UOIS for them; the ids of a type it lacks are
  refused (uois_externalids_to_send). Empty for a whole export.
*/
SELECT DISTINCT type_id AS id
FROM uois_externalids
WHERE type_id NOT IN (SELECT id FROM uois_externalid_types)
ORDER BY id
