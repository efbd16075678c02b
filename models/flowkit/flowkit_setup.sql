/* elt
materialized: table
tags: [flowkit]
description: >
  The body of POST /setup (which replaces the whole configuration): config.json's six
  sections. srid and trid must be explicit, or a second /setup renumbers the resolutions
  and orphans the datasets already sent.
columns:
  setup_id: {tests: [not_null, unique]}
tests:
  - expression:
      name: flowkit_setup_sections_are_lists
      sql: >-
        json_type(payload -> '$.languages') = 'ARRAY'
        AND json_type(payload -> '$.data_providers') = 'ARRAY'
        AND json_type(payload -> '$.categories') = 'ARRAY'
        AND json_type(payload -> '$.indicators') = 'ARRAY'
        AND json_type(payload -> '$.temporal_resolutions') = 'ARRAY'
        AND json_type(payload -> '$.spatial_resolutions') = 'ARRAY'
  - expression:
      name: flowkit_setup_resolution_ids_explicit
      sql: >-
        list_count(TRY_CAST(json_extract(payload, '$.spatial_resolutions[*].srid') AS INTEGER[]))
          = json_array_length(payload -> '$.spatial_resolutions')
        AND list_count(TRY_CAST(json_extract(payload, '$.temporal_resolutions[*].trid') AS INTEGER[]))
          = json_array_length(payload -> '$.temporal_resolutions')
*/
SELECT
    'config' AS setup_id,
    json_object(
        'languages', content -> '$.languages',
        'data_providers', content -> '$.data_providers',
        'categories', content -> '$.categories',
        'indicators', content -> '$.indicators',
        'temporal_resolutions', content -> '$.temporal_resolutions',
        'spatial_resolutions', content -> '$.spatial_resolutions'
    ) AS payload
FROM raw.flowkit_config
