/* elt
materialized: table
tags: [flowkit]
description: >
  The indicators config.json declares (model flowkit_indicators) against those the backend
  lists per category (API source raw.flowkit_backend_lists). A configured indicator the backend
  does not list has no visible data yet: expected on a fresh backend, hence a warning.
columns:
  indicator_id: {tests: [not_null]}
tests:
  - unique: [category_id, indicator_id]
  - expression: {name: flowkit_backend_lists_configured_indicators,
                 sql: "in_config AND in_backend", severity: warn}
*/
WITH backend AS (
    SELECT category_id, unnest(json_extract(result, '$[*]')) ->> 'indicator_id' AS indicator_id
    FROM raw.flowkit_backend_lists
    WHERE error IS NULL
)
SELECT
    coalesce(c.category_id, b.category_id) AS category_id,
    coalesce(c.indicator_id, b.indicator_id) AS indicator_id,
    c.indicator_id IS NOT NULL AS in_config,
    b.indicator_id IS NOT NULL AS in_backend
FROM flowkit_indicators AS c
FULL OUTER JOIN (SELECT DISTINCT category_id, indicator_id FROM backend) AS b
    ON b.category_id = c.category_id AND b.indicator_id = c.indicator_id
ORDER BY category_id, indicator_id
