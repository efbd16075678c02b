/* elt
materialized: table
tags: [flowkit, staging]
description: >
  The monthly relocations export, clean: one row per (date, origin, destination), every indicator column as
  DOUBLE. pcod_from becomes origin and pcod_to destination (the old notebook's rename
  overwrote origin). Empty, NaN, Inf and -Inf cells are no value (NULL); rows without a
  date, either unit or any value are dropped, exact duplicates too.
columns:
  date: {description: First day of the month, tests: [not_null]}
  origin: {description: Communal section the flow leaves, tests: [not_null]}
  destination: {description: Communal section the flow reaches, tests: [not_null]}
tests:
  - unique: [date, origin, destination]
*/
WITH parsed AS (
    SELECT
        try_strptime(trim(CAST("date" AS VARCHAR)), ['%Y-%m-%d', '%Y-%m']) AS date,
        nullif(trim(CAST(pcod_from AS VARCHAR)), '') AS origin,
        nullif(trim(CAST(pcod_to AS VARCHAR)), '') AS destination,
        CASE WHEN isfinite(try_cast(COLUMNS(* EXCLUDE ("date", pcod_from, pcod_to, _elt_source_file, _elt_load_id)) AS DOUBLE))
             THEN try_cast(COLUMNS(* EXCLUDE ("date", pcod_from, pcod_to, _elt_source_file, _elt_load_id)) AS DOUBLE) END,
        _elt_source_file
    FROM raw.flowkit_relocations
)
SELECT * EXCLUDE (_elt_source_file), min(_elt_source_file) AS source_file
FROM parsed
WHERE date IS NOT NULL
  AND origin IS NOT NULL
  AND destination IS NOT NULL
  AND list_count([*COLUMNS(* EXCLUDE (date, origin, destination, _elt_source_file))]) > 0
GROUP BY ALL
ORDER BY date, origin, destination
