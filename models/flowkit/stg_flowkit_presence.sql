/* elt
# A new daily drop only adds rows to raw.flowkit_presence: the build recomputes only the
# (date, spatial_unit) keys its rows reach, from all files (DESIGN.md, incremental).
materialized: incremental
unique_key: [date, spatial_unit]
tags: [flowkit, staging]
description: >
  The daily presence drops (one file per drop, unioned), clean: one row per (date,
  spatial_unit), every indicator column as DOUBLE. Empty, NaN, Inf and -Inf cells are no
  value (NULL); rows without a date, a unit or any value are dropped, exact duplicates too
  (a row delivered again in a later drop is kept once, with the first file's name).
columns:
  date: {description: The day, tests: [not_null]}
  spatial_unit: {description: Communal section (admin3) code, tests: [not_null]}
tests:
  - unique: [date, spatial_unit]
*/
WITH parsed AS (
    SELECT
        try_strptime(trim(CAST("date" AS VARCHAR)), ['%Y-%m-%d', '%Y-%m']) AS date,
        nullif(trim(CAST(pcod AS VARCHAR)), '') AS spatial_unit,
        CASE WHEN isfinite(try_cast(COLUMNS(* EXCLUDE ("date", pcod, _elt_source_file, _elt_load_id)) AS DOUBLE))
             THEN try_cast(COLUMNS(* EXCLUDE ("date", pcod, _elt_source_file, _elt_load_id)) AS DOUBLE) END,
        _elt_source_file
    FROM raw.flowkit_presence
)
SELECT * EXCLUDE (_elt_source_file), min(_elt_source_file) AS source_file
FROM parsed
WHERE date IS NOT NULL
  AND spatial_unit IS NOT NULL
  AND list_count([*COLUMNS(* EXCLUDE (date, spatial_unit, _elt_source_file))]) > 0
GROUP BY ALL
ORDER BY date, spatial_unit
