/* elt
materialized: table
tags: [flowkit]
description: >
  One row per dataset to send with POST /data (key: category, indicator, srid, trid, dt):
  payload is the request body exactly as the contract shows it. Only columns config.json
  declares as indicators of the category are published; data_type is the category's type.
  data_input is sorted by unit, so an unchanged dataset has an unchanged payload.
columns:
  category_id: {tests: [not_null]}
  indicator_id: {tests: [not_null]}
  srid: {tests: [not_null]}
  trid: {tests: [not_null]}
  dt: {description: The period's first day (TIMESTAMP), tests: [not_null]}
  payload:
    tests:
      - expression: {name: flowkit_payload_data_input_not_empty,
                     sql: "json_array_length(payload -> '$.data_input') > 0"}
  n_values: {description: Entries in data_input}
tests:
  - unique: [category_id, indicator_id, srid, trid, dt]
  - relationships: {column: indicator_id, to: flowkit_indicators, field: indicator_id,
                    name: flowkit_datasets_indicator_declared}
  - expression:
      name: flowkit_payload_metadata_matches_key
      sql: >-
        payload ->> '$.metadata.category_id' = category_id
        AND payload ->> '$.metadata.indicator_id' = indicator_id
        AND CAST(payload ->> '$.metadata.srid' AS INTEGER) = srid
        AND CAST(payload ->> '$.metadata.trid' AS INTEGER) = trid
        AND payload ->> '$.metadata.dt' = strftime(dt, '%Y-%m-%d %H:%M:%S')
        AND json_type(payload -> '$.metadata.revision') = 'VARCHAR'
  - expression:
      name: flowkit_payload_data_finite
      sql: >-
        list_count(TRY_CAST(json_extract(payload, '$.data_input[*].data') AS DOUBLE[]))
          = json_array_length(payload -> '$.data_input')
        AND isfinite(list_min(TRY_CAST(json_extract(payload, '$.data_input[*].data') AS DOUBLE[])))
        AND isfinite(list_max(TRY_CAST(json_extract(payload, '$.data_input[*].data') AS DOUBLE[])))
  - expression:
      name: flowkit_payload_min_max_int32
      sql: >-
        list_min(TRY_CAST(json_extract(payload, '$.data_input[*].data') AS DOUBLE[])) >= -2147483648
        AND list_max(TRY_CAST(json_extract(payload, '$.data_input[*].data') AS DOUBLE[])) <= 2147483647
  - expression:
      name: flowkit_payload_units_match_data_type
      sql: >-
        json_array_length(payload -> '$.data_input[0].spatial_unit_ids')
          = CASE payload ->> '$.data_type' WHEN 'flow' THEN 2 WHEN 'single_location' THEN 1 END
        AND json_array_length(payload -> '$.data_input') = n_values
*/
WITH declared AS (
    SELECT v.category_id, i.indicator_id, e.srid, e.trid, v.date AS dt, c.data_type,
           v.spatial_unit_ids, v.value
    FROM flowkit_values AS v
    JOIN flowkit_indicators AS i ON i.category_id = v.category_id AND i.column_name = v.column_name
    JOIN flowkit_categories AS c ON c.category_id = v.category_id
    JOIN flowkit_exports AS e ON e.category_id = v.category_id
)
SELECT
    category_id, indicator_id, srid, trid, dt,
    json_object(
        'metadata', json_object(
            'revision', 'v1',  -- the data's revision label, the same for every dataset
            'category_id', category_id, 'indicator_id', indicator_id,
            'srid', srid, 'trid', trid, 'dt', strftime(dt, '%Y-%m-%d %H:%M:%S')),
        'data_type', data_type,
        'data_input', to_json(list(
            json_object(
                'spatial_unit_ids', spatial_unit_ids,
                -- whole numbers as JSON integers (544650, not 544650.0)
                'data', CASE WHEN value = trunc(value) AND abs(value) < 1e15
                             THEN to_json(CAST(value AS BIGINT)) ELSE to_json(value) END)
            ORDER BY spatial_unit_ids))
    ) AS payload,
    count(*) AS n_values,
    min(value) AS min_value,
    max(value) AS max_value
FROM declared
GROUP BY category_id, indicator_id, srid, trid, dt, data_type
ORDER BY category_id, indicator_id, srid, trid, dt
