/* elt
materialized: table
tags: [uois]
description: >
  The external ids publication uois_externalids sends: each (type, outer id) of the export
  with `refused` saying why it must not be registered — UOIS already names another inner id
  for it (it would accept a second mapping; the contract says the client must not send it).
  Refused rows are never sent and show as `refused` in `elt status`. An id whose lookup
  failed or did not run (`elt build --exclude kind:api`) is not refused.
*/
SELECT
    inner_id,
    outer_id,
    type_id,
    CASE WHEN status = 'conflict'
         THEN 'outer id ' || outer_id || ' of type ' || type_id || ' is registered in UOIS '
              || 'to another inner id (' || registered_inner_id || ')'
    END AS refused
FROM uois_externalids_to_register
ORDER BY type_id, outer_id
