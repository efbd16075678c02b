/* elt
materialized: view
tags: [flowkit]
description: >
  The indicators config.json declares: only these are published. indicator_id is
  `<category_id>.<csv column>`; column_name is that CSV column.
columns:
  indicator_id: {tests: [not_null, unique]}
  column_name: {tests: [not_null]}
tests:
  - relationships: {column: category_id, to: flowkit_categories, field: category_id}
  - expression: {name: flowkit_indicator_id_is_category_dot_column,
                 sql: "indicator_id = category_id || '.' || column_name AND column_name <> ''"}
*/
SELECT i ->> 'category_id' AS category_id,
       i ->> 'indicator_id' AS indicator_id,
       substr(i ->> 'indicator_id', length(i ->> 'category_id') + 2) AS column_name
FROM (SELECT unnest(json_extract(content, '$.indicators[*]')) AS i FROM raw.flowkit_config)
