/* elt
materialized: table
tags: [uois]
description: >
  The groups publication uois_groups sends: each group of the export with `refused` saying
  why it must not be sent: its group type is neither in the export's grouptypes (which
  uois_grouptypes creates first) nor in UOIS (raw.uois_grouptypes_found), so UOIS would
  answer a foreign-key error. A type whose lookup failed or did not run is not refused.
*/
SELECT
    g.*,
    CASE WHEN f.fetched_at IS NOT NULL AND f.error IS NULL AND f.result IS NULL
         THEN 'group type ' || g.grouptype_id || ' is neither in the export nor in UOIS'
    END AS refused
FROM uois_groups AS g
LEFT JOIN raw.uois_grouptypes_found AS f ON f.id = g.grouptype_id
ORDER BY g.id
