-- One row per business message with a status event, as `make report` reads its document:
-- its first time (the earliest of its statuses' times) and day (UTC), the time of each
-- status the metrics use (status names differ per provider: compared lower-cased), and
-- the error its failed receipt set.
WITH statuses AS (
  SELECT
    JSON_VALUE(data, '$.provider') AS provider,
    JSON_VALUE(data, '$.agent') AS agent,
    JSON_VALUE(data, '$.conversationId') AS conversation_id,
    JSON_VALUE(data, '$.messageId') AS message_id,
    LOWER(JSON_VALUE(data, '$.status')) AS status,
    TIMESTAMP(JSON_VALUE(data, '$.time')) AS time,
    JSON_VALUE(data, '$.message.errorCode') AS error_code,
    JSON_VALUE(data, '$.message.errorDescription') AS error_description
  FROM `${dataset}.events`
  WHERE type = 'receipt-pipeline.message.status.v1'
)
SELECT
  COALESCE(NULLIF(provider, ''), 'unknown') AS provider,
  COALESCE(NULLIF(MAX(agent), ''), '(none)') AS agent,
  conversation_id,
  message_id,
  MIN(time) AS first_time,
  DATE(MIN(time)) AS day,
  MIN(IF(status = 'delivered', time, NULL)) AS delivered_time,
  MIN(IF(status = 'read', time, NULL)) AS read_time,
  MIN(IF(status = 'failed', time, NULL)) AS failed_time,
  COALESCE(NULLIF(MAX(IF(status = 'failed', error_code, NULL)), ''), '(no code)') AS error_code,
  NULLIF(MAX(IF(status = 'failed', error_description, NULL)), '') AS error_description
FROM statuses
GROUP BY provider, conversation_id, message_id
