/* elt
materialized: view
tags: [flowkit]
description: >
  Every value of every export, long: one row per (category, CSV column, date, unit or
  units). UNPIVOT over all indicator columns (none named here) drops the NULLs, i.e. the
  cells that were empty, NaN, Inf or -Inf.
*/
SELECT 'residents' AS category_id, date, [spatial_unit] AS spatial_unit_ids, column_name, value
FROM (UNPIVOT stg_flowkit_residents ON COLUMNS(* EXCLUDE (date, spatial_unit, source_file))
      INTO NAME column_name VALUE value)
UNION ALL
SELECT 'presence', date, [spatial_unit], column_name, value
FROM (UNPIVOT stg_flowkit_presence ON COLUMNS(* EXCLUDE (date, spatial_unit, source_file))
      INTO NAME column_name VALUE value)
UNION ALL
SELECT 'relocations', date, [origin, destination], column_name, value
FROM (UNPIVOT stg_flowkit_relocations ON COLUMNS(* EXCLUDE (date, origin, destination, source_file))
      INTO NAME column_name VALUE value)
UNION ALL
SELECT 'movements', date, [origin, destination], column_name, value
FROM (UNPIVOT stg_flowkit_movements ON COLUMNS(* EXCLUDE (date, origin, destination, source_file))
      INTO NAME column_name VALUE value)
