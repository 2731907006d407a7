-- One row per user message (what users said: not typing or sign-ins), as `make report`
-- reads its document: its first time and day (UTC), its create time (its first time when
-- the provider gave none), and the agent's READ of it once settled (SENT or FAILED).
WITH received AS (
  SELECT
    JSON_VALUE(data, '$.provider') AS provider,
    JSON_VALUE(data, '$.agent') AS agent,
    JSON_VALUE(data, '$.conversationId') AS conversation_id,
    JSON_VALUE(data, '$.messageId') AS message_id,
    JSON_VALUE(data, '$.kind') AS kind,
    TIMESTAMP(JSON_VALUE(data, '$.createTime')) AS create_time,
    TIMESTAMP(JSON_VALUE(data, '$.firstTime')) AS first_time
  FROM `${dataset}.events`
  WHERE type = 'receipt-pipeline.message.received.v1'
),
settled AS (
  SELECT
    JSON_VALUE(data, '$.provider') AS provider,
    JSON_VALUE(data, '$.conversationId') AS conversation_id,
    JSON_VALUE(data, '$.messageId') AS message_id,
    JSON_VALUE(data, '$.state') AS state,
    TIMESTAMP(JSON_VALUE(data, '$.time')) AS time
  FROM `${dataset}.events`
  WHERE type = 'receipt-pipeline.agent_read.settled.v1'
)
SELECT
  COALESCE(NULLIF(received.provider, ''), 'unknown') AS provider,
  COALESCE(NULLIF(received.agent, ''), '(none)') AS agent,
  received.conversation_id,
  received.message_id,
  received.first_time,
  DATE(received.first_time) AS day,
  COALESCE(received.create_time, received.first_time) AS create_time,
  settled.state AS agent_read_state,
  settled.time AS agent_read_time
FROM received
LEFT JOIN settled
  ON settled.provider = received.provider
  AND settled.conversation_id = received.conversation_id
  AND settled.message_id = received.message_id
WHERE received.kind IN ('message', 'suggestionResponse')
