/* elt
materialized: table
tags: [uois]
description: >
  The external id types of the export (UČO, Moodle, ORCID...), to create with
  externaltypeidInsert ($id, $name, $name_en, $urlformat) before any external id: a fresh
  UOIS has none of them (its category is not sent: the export's categories are not).
columns:
  id: {tests: [not_null, unique]}
*/
SELECT lower(trim(CAST(id AS VARCHAR))) AS id, name, name_en, urlformat
FROM raw.systemdata_externalidtypes
