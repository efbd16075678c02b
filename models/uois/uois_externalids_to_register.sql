/* elt
materialized: table
tags: [uois]
description: >
  Each external id of the export beside what UOIS has registered for its (type, outer id)
  (raw.uois_internal_ids, asked with internalId): `missing` when UOIS knows none,
  `registered` when it names this inner id, `conflict` when it names another one (UOIS
  would accept a second registration, so look before sending it), `unknown` when the
  lookup failed or has not run.
columns:
  status: {tests: [not_null, {accepted_values: {values: [missing, registered, conflict, unknown]}}]}
tests:
  - unique: [type_id, outer_id]
  - expression: {name: uois_externalids_without_conflict, sql: "status <> 'conflict'",
                 severity: warn}
*/
SELECT
    e.inner_id,
    e.outer_id,
    e.type_id,
    lower(a.result ->> '$') AS registered_inner_id,
    CASE
        WHEN a.fetched_at IS NULL OR a.error IS NOT NULL THEN 'unknown'
        WHEN a.result IS NULL THEN 'missing'
        WHEN lower(a.result ->> '$') = e.inner_id THEN 'registered'
        ELSE 'conflict'
    END AS status,
    coalesce(lower(a.result ->> '$') IS DISTINCT FROM e.inner_id, TRUE) AS needs_registering,
    a.error AS lookup_error,
    a.fetched_at AS checked_at
FROM uois_externalids AS e
LEFT JOIN raw.uois_internal_ids AS a ON a.type_id = e.type_id AND a.outer_id = e.outer_id
ORDER BY e.type_id, e.outer_id
