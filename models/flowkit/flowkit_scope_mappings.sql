/* elt
materialized: table
tags: [flowkit]
description: >
  (scope, mdid) pairs to send with POST /scope_mapping: every dataset the backend
  acknowledged (published.flowkit_data; answer = its mdid, from the 201 or the 303) that
  matches a query of the data access spec: same category, indicator, srid and trid, and
  dt within [start_date, start_date + duration periods of the trid). The period length is
  the temporal resolution's relativedelta in config.json. Empty before the first publish.
columns:
  scope: {tests: [not_null]}
  mdid: {tests: [not_null]}
  payload:
    tests:
      - expression: {name: flowkit_scope_mapping_payload_shape,
                     sql: "json_type(payload -> '$.mdid') IN ('UBIGINT', 'BIGINT') AND payload ->> '$.scope' = scope"}
tests:
  - unique: [scope, mdid]
*/
WITH scopes AS (
    SELECT unnest(json_keys(content)) AS scope, content FROM raw.flowkit_data_access
),
queries AS (
    SELECT
        scope,
        q ->> 'category_id' AS category_id,
        q ->> 'indicator_id' AS indicator_id,
        CAST(q ->> 'srid' AS INTEGER) AS srid,
        CAST(q ->> 'trid' AS INTEGER) AS trid,
        CAST(try_strptime(q ->> 'start_date', ['%Y-%m-%d', '%Y-%m', '%Y']) AS TIMESTAMP) AS start_at,
        CAST(q ->> 'duration' AS INTEGER) AS duration
    FROM (SELECT scope, unnest(CAST(json_extract(content, scope) AS JSON[])) AS q FROM scopes)
),
periods AS (
    SELECT
        CAST(t ->> 'trid' AS INTEGER) AS trid,
        t ->> 'relativedelta_unit' AS unit,
        coalesce(CAST(t ->> 'relativedelta_num' AS INTEGER), 1) AS num
    FROM (SELECT unnest(json_extract(content, '$.temporal_resolutions[*]')) AS t
          FROM raw.flowkit_config)
),
windows AS (
    SELECT q.*, q.start_at + CAST((q.duration * p.num) || ' ' || p.unit AS INTERVAL) AS end_at
    FROM queries AS q
    JOIN periods AS p ON p.trid = q.trid
),
acknowledged AS (
    SELECT
        category_id,
        indicator_id,
        CAST(srid AS INTEGER) AS srid,
        CAST(trid AS INTEGER) AS trid,
        CAST(dt AS TIMESTAMP) AS dt,
        TRY_CAST(answer AS BIGINT) AS mdid
    FROM published.flowkit_data
    WHERE status = 'acknowledged'
)
SELECT DISTINCT w.scope, a.mdid, json_object('scope', w.scope, 'mdid', a.mdid) AS payload,
       a.category_id, a.indicator_id, a.srid, a.trid, a.dt  -- the dataset, for `elt verify`
FROM windows AS w
JOIN acknowledged AS a
  ON a.category_id = w.category_id
 AND a.indicator_id = w.indicator_id
 AND a.srid = w.srid
 AND a.trid = w.trid
 AND a.dt >= w.start_at
 AND a.dt < w.end_at
WHERE a.mdid IS NOT NULL
ORDER BY w.scope, a.mdid
