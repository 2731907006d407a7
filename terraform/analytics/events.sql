-- One row per change-stream event. The table holds every delivery of the BigQuery
-- subscription, at least once: an event delivered twice has one id, and is kept once.
SELECT
  JSON_VALUE(data, '$.id') AS id,
  JSON_VALUE(data, '$.type') AS type,
  JSON_VALUE(data, '$.source') AS source,
  JSON_VALUE(data, '$.subject') AS subject,
  TIMESTAMP(JSON_VALUE(data, '$.time')) AS time,
  JSON_QUERY(data, '$.data') AS data,
  publish_time
FROM `${dataset}.changes`
WHERE JSON_VALUE(data, '$.id') IS NOT NULL
QUALIFY ROW_NUMBER() OVER (PARTITION BY JSON_VALUE(data, '$.id') ORDER BY publish_time, message_id) = 1
