/* elt
# Rebuilt per (indicator, date): one changed export cell redoes only the datasets its rows
# reach (the staging tables keep their changed rows for it; see DESIGN.md, partition_by).
materialized: incremental
partition_by: [dt, indicator_id]  # full builds run in batches in this order: by date
tags: [flowkit]
description: >
  One row per dataset to send with POST /data (key: category, indicator, srid, trid, dt):
  payload is the request body exactly as the contract shows it. Only columns config.json
  declares as indicators of the category are published; data_type is the category's type.
  data_input is sorted by unit, so an unchanged dataset has an unchanged payload.
  n_values, min_value, max_value and units_per_value describe data_input, so the tests
  below check them instead of parsing every payload (payload is built from the same rows).
columns:
  category_id: {tests: [not_null]}
  indicator_id: {tests: [not_null]}
  srid: {tests: [not_null]}
  trid: {tests: [not_null]}
  dt: {description: The period's first day (TIMESTAMP), tests: [not_null]}
  payload:
    tests:
      - expression: {name: flowkit_payload_data_input_not_empty,
                     sql: "n_values > 0 AND contains(payload, ',\"data_input\":[{\"spatial_unit_ids\":[')
                           AND ends_with(payload, '}]}')"}
  n_values: {description: Entries in data_input}
  units_per_value: {description: Spatial units per data_input entry (NULL if they differ)}
tests:
  - unique: [category_id, indicator_id, srid, trid, dt]
  - relationships: {column: indicator_id, to: flowkit_indicators, field: indicator_id,
                    name: flowkit_datasets_indicator_declared}
  # The head of the payload, up to data_input, is a small JSON object of its own: parsing
  # only that keeps these checks cheap however large data_input is.
  - expression:
      name: flowkit_payload_metadata_matches_key
      sql: >-
        json_extract_string(left(payload, strpos(payload, ',"data_input":') - 1) || '}',
                            ['$.metadata.category_id', '$.metadata.indicator_id',
                             '$.metadata.srid', '$.metadata.trid', '$.metadata.dt'])
          = [category_id, indicator_id, CAST(srid AS VARCHAR), CAST(trid AS VARCHAR),
             strftime(dt, '%Y-%m-%d %H:%M:%S')]
        AND json_type(left(payload, strpos(payload, ',"data_input":') - 1) || '}',
                      '$.metadata.revision') = 'VARCHAR'
        AND json_type(left(payload, strpos(payload, ',"data_input":') - 1) || '}',
                      '$.metadata.srid') IN ('UBIGINT', 'BIGINT')
        AND json_type(left(payload, strpos(payload, ',"data_input":') - 1) || '}',
                      '$.metadata.trid') IN ('UBIGINT', 'BIGINT')
  # No `"data":null` check over the payloads (a 1 GB rescan): a NULL value cannot reach
  # them. UNPIVOT drops NULLs, and a NULL value's fragment is NULL, which string_agg skips
  # (n_values counts only the values that made an entry). NaN and infinities would, as the
  # invalid JSON `NaN` and `Infinity`: min/max catch them without reading the payloads.
  - expression:
      name: flowkit_payload_data_finite
      sql: >-
        isfinite(min_value) AND isfinite(max_value)
  - expression:
      name: flowkit_payload_min_max_int32
      sql: >-
        min_value >= -2147483648 AND max_value <= 2147483647
  - expression:
      name: flowkit_payload_units_match_data_type
      sql: >-
        units_per_value = CASE data_type WHEN 'flow' THEN 2 WHEN 'single_location' THEN 1 END
        AND json_extract_string(left(payload, strpos(payload, ',"data_input":') - 1) || '}',
                                '$.data_type') = data_type
*/
WITH per_column AS (
    -- data_input is built as text, one JSON fragment per value joined by string_agg: a
    -- json_object per value, a LIST of STRUCTs, or re-parsing the result as JSON each cost
    -- several times the time and memory (bench/README.md). Grouped by export column, the
    -- config's names joined to the ~20,000 results after: the 17M values are hashed on
    -- three keys instead of six (bench/README.md)
    SELECT
        category_id, column_name, date AS dt,
        '[' || string_agg(entry_head ||  -- '{"spatial_unit_ids":[...],"data":'
              -- whole numbers as JSON integers (544650, not 544650.0)
              CASE WHEN value = trunc(value) AND abs(value) < 1e15
                   THEN CAST(CAST(value AS BIGINT) AS VARCHAR) ELSE to_json(value)::VARCHAR END
              || '}', ',' ORDER BY spatial_unit_ids) || ']' AS data_input,
        count(value) AS n_values,  -- entries in data_input (a NULL value makes none)
        min(value) AS min_value,
        max(value) AS max_value,
        CASE WHEN min(len(spatial_unit_ids)) = max(len(spatial_unit_ids))
             THEN min(len(spatial_unit_ids)) END AS units_per_value
    FROM flowkit_values
    GROUP BY category_id, column_name, date
),
datasets AS (
    SELECT p.category_id, i.indicator_id, e.srid, e.trid, p.dt, c.data_type, p.data_input,
           p.n_values, p.min_value, p.max_value, p.units_per_value
    FROM per_column AS p
    JOIN flowkit_indicators AS i ON i.category_id = p.category_id AND i.column_name = p.column_name
    JOIN flowkit_categories AS c ON c.category_id = p.category_id
    JOIN flowkit_exports AS e ON e.category_id = p.category_id
)
SELECT
    category_id, indicator_id, srid, trid, dt, data_type,
    '{"metadata":' || json_object(
            'revision', 'v1',  -- the data's revision label, the same for every dataset
            'category_id', category_id, 'indicator_id', indicator_id,
            'srid', srid, 'trid', trid, 'dt', strftime(dt, '%Y-%m-%d %H:%M:%S'))::VARCHAR
        || ',"data_type":' || to_json(data_type)::VARCHAR
        || ',"data_input":' || data_input || '}' AS payload,
    n_values, min_value, max_value, units_per_value
FROM datasets
ORDER BY category_id, indicator_id, srid, trid, dt
