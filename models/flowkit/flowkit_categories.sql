/* elt
materialized: view
tags: [flowkit]
description: The categories config.json declares, with their data_type (the category's type).
columns:
  category_id: {tests: [not_null, unique]}
  data_type: {tests: [not_null, {accepted_values: {values: [single_location, flow]}}]}
*/
SELECT c ->> 'category_id' AS category_id, c ->> 'type' AS data_type
FROM (SELECT unnest(json_extract(content, '$.categories[*]')) AS c FROM raw.flowkit_config)
