-- Columns an export must have and lacks: its key columns (date, unit or units), and every
-- indicator config.json declares for its category. A failing row names the category and
-- the missing column (a missing key column also stops the export's staging model). While
-- it fails, what reads both exports and indicators (flowkit_datasets and after it) is
-- skipped: no datasets are built or published from exports that disagree with config.json.
WITH expected AS (
    SELECT category_id, unnest(key_columns) AS column_name, 'key column' AS expected_as
    FROM flowkit_exports
    UNION ALL
    SELECT i.category_id, i.column_name, 'indicator ' || i.indicator_id
    FROM flowkit_indicators AS i
    WHERE i.category_id IN (SELECT category_id FROM flowkit_exports)
),
present AS (
    SELECT category_id, unnest(export_columns) AS column_name FROM flowkit_exports
)
SELECT x.category_id, x.column_name AS missing_column, x.expected_as
FROM expected AS x
ANTI JOIN present AS p ON p.category_id = x.category_id AND p.column_name = x.column_name
ORDER BY x.category_id, x.column_name
