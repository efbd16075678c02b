/* elt
materialized: table
tags: [uois]
description: >
  Users to create with userInsert; the columns are the mutation's variables ($id, $name,
  $surname, $email). Emails are trimmed and lower-cased; exact duplicates are dropped.
columns:
  id:
    tests:
      - not_null
      - unique
      - expression: {name: uois_users_id_is_uuid,
                     sql: "regexp_full_match(id, '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')"}
  name: {tests: [not_null]}
  surname: {tests: [not_null]}
  email:
    tests:
      - not_null
      - expression: {name: uois_users_email_looks_like_email,
                     sql: "regexp_full_match(email, '[^@\\s]+@[^@\\s]+\\.[^@\\s]+')"}
*/
SELECT DISTINCT
    lower(trim(CAST(id AS VARCHAR))) AS id,
    trim(name) AS name,
    trim(surname) AS surname,
    lower(trim(email)) AS email
FROM raw.systemdata_users
ORDER BY id
