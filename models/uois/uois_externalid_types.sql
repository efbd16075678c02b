/* elt
materialized: view
tags: [uois]
description: The external id types of the export (UČO, Moodle, ORCID...), for checks only.
columns:
  id: {tests: [not_null, unique]}
*/
SELECT lower(trim(CAST(id AS VARCHAR))) AS id, name, name_en, urlformat
FROM raw.systemdata_externalidtypes
