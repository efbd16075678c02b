/* elt
materialized: table
tags: [uois]
description: >
  The external ids publication uois_externalids sends: each (type, outer id) of the export
  with `refused` saying why it must not be registered — UOIS already names another inner id
  for it (it would accept a second mapping; the contract says the client must not send it).
  Also refused: an id whose type is neither in the export's externalidtypes (which
  uois_externalid_types creates first) nor in UOIS (raw.uois_externalidtypes_found).
  Refused rows are never sent and show as `refused` in `elt status`. An id whose lookup
  failed or did not run (`elt build --exclude kind:api`) is not refused.
*/
SELECT
    r.inner_id,
    r.outer_id,
    r.type_id,
    CASE WHEN f.fetched_at IS NOT NULL AND f.error IS NULL AND f.result IS NULL
         THEN 'external-id type ' || r.type_id || ' is neither in the export nor in UOIS'
         WHEN r.status = 'conflict'
         THEN 'outer id ' || r.outer_id || ' of type ' || r.type_id || ' is registered in UOIS '
              || 'to another inner id (' || r.registered_inner_id || ')'
    END AS refused
FROM uois_externalids_to_register AS r
LEFT JOIN raw.uois_externalidtypes_found AS f ON f.id = r.type_id
ORDER BY r.type_id, r.outer_id
