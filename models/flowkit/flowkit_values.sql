/* elt
materialized: view
tags: [flowkit]
description: >
  Every value of every export, long: one row per (category, CSV column, date, unit or
  units). UNPIVOT over all indicator columns (none named here) drops the NULLs, i.e. the
  cells that were empty, NaN, Inf or -Inf. entry_head is the JSON text every data_input
  entry of the row's units starts with, {"spatial_unit_ids":[...],"data": made once per
  export row (before the UNPIVOT multiplies the rows by the indicator columns).
*/
SELECT 'residents' AS category_id, date, spatial_unit_ids, entry_head, column_name, value
FROM (UNPIVOT (SELECT *, [spatial_unit] AS spatial_unit_ids,
                      '{"spatial_unit_ids":' || to_json([spatial_unit])
                          || ',"data":' AS entry_head
               FROM stg_flowkit_residents)
      ON COLUMNS(* EXCLUDE (date, spatial_unit, source_file, spatial_unit_ids, entry_head))
      INTO NAME column_name VALUE value)
UNION ALL
SELECT 'presence', date, spatial_unit_ids, entry_head, column_name, value
FROM (UNPIVOT (SELECT *, [spatial_unit] AS spatial_unit_ids,
                      '{"spatial_unit_ids":' || to_json([spatial_unit])
                          || ',"data":' AS entry_head
               FROM stg_flowkit_presence)
      ON COLUMNS(* EXCLUDE (date, spatial_unit, source_file, spatial_unit_ids, entry_head))
      INTO NAME column_name VALUE value)
UNION ALL
SELECT 'relocations', date, spatial_unit_ids, entry_head, column_name, value
FROM (UNPIVOT (SELECT *, [origin, destination] AS spatial_unit_ids,
                      '{"spatial_unit_ids":' || to_json([origin, destination])
                          || ',"data":' AS entry_head
               FROM stg_flowkit_relocations)
      ON COLUMNS(* EXCLUDE (date, origin, destination, source_file, spatial_unit_ids, entry_head))
      INTO NAME column_name VALUE value)
UNION ALL
SELECT 'movements', date, spatial_unit_ids, entry_head, column_name, value
FROM (UNPIVOT (SELECT *, [origin, destination] AS spatial_unit_ids,
                      '{"spatial_unit_ids":' || to_json([origin, destination])
                          || ',"data":' AS entry_head
               FROM stg_flowkit_movements)
      ON COLUMNS(* EXCLUDE (date, origin, destination, source_file, spatial_unit_ids, entry_head))
      INTO NAME column_name VALUE value)
