-- Per provider and agent: user messages, the agent's READ receipts settled SENT and FAILED,
-- and the READ latency in seconds (the READ's SENT time minus the message's create time),
-- by nearest rank. A negative one is left out and counted as out of order.
WITH latencies AS (
  SELECT
    provider,
    agent,
    agent_read_state,
    IF(
      agent_read_state = 'SENT',
      TIMESTAMP_DIFF(agent_read_time, create_time, MICROSECOND) / 1000000,
      NULL
    ) AS seconds
  FROM `${dataset}.user_messages`
),
percentiles AS (
  SELECT
    provider,
    agent,
    agent_read_state,
    seconds >= 0 AS in_order,
    PERCENTILE_DISC(seconds, 0.5) OVER (PARTITION BY provider, agent, seconds >= 0) AS p50,
    PERCENTILE_DISC(seconds, 0.9) OVER (PARTITION BY provider, agent, seconds >= 0) AS p90,
    PERCENTILE_DISC(seconds, 0.99) OVER (PARTITION BY provider, agent, seconds >= 0) AS p99
  FROM latencies
)
SELECT
  provider,
  agent,
  COUNT(*) AS user_messages,
  COUNTIF(agent_read_state = 'SENT') AS agent_reads_sent,
  COUNTIF(agent_read_state = 'FAILED') AS agent_reads_failed,
  COUNTIF(in_order) AS samples,
  MAX(IF(in_order, p50, NULL)) AS p50_seconds,
  MAX(IF(in_order, p90, NULL)) AS p90_seconds,
  MAX(IF(in_order, p99, NULL)) AS p99_seconds,
  COUNTIF(NOT in_order) AS out_of_order
FROM percentiles
GROUP BY provider, agent
