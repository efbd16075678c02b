/* elt
materialized: table
tags: [flowkit, staging]
description: >
  The monthly residents export, clean: one row per (date, spatial_unit), every indicator
  column as DOUBLE. Empty, NaN, Inf and -Inf cells are no value (NULL); rows without a date,
  a unit or any value are dropped, exact duplicates too (source_file: where the row came from).
  Indicator columns are taken as they come (COLUMNS), so none is named here.
columns:
  date: {description: First day of the month, tests: [not_null]}
  spatial_unit: {description: Communal section (admin3) code, tests: [not_null]}
tests:
  - unique: [date, spatial_unit]
*/
WITH parsed AS (
    SELECT
        try_strptime(trim(CAST(month AS VARCHAR)), ['%Y-%m-%d', '%Y-%m']) AS date,
        nullif(trim(CAST(pcod AS VARCHAR)), '') AS spatial_unit,
        CASE WHEN isfinite(try_cast(COLUMNS(* EXCLUDE (month, pcod, _elt_source_file, _elt_load_id)) AS DOUBLE))
             THEN try_cast(COLUMNS(* EXCLUDE (month, pcod, _elt_source_file, _elt_load_id)) AS DOUBLE) END,
        _elt_source_file
    FROM raw.flowkit_residents
)
SELECT * EXCLUDE (_elt_source_file), min(_elt_source_file) AS source_file
FROM parsed
WHERE date IS NOT NULL
  AND spatial_unit IS NOT NULL
  AND list_count([*COLUMNS(* EXCLUDE (date, spatial_unit, _elt_source_file))]) > 0
GROUP BY ALL
ORDER BY date, spatial_unit
