-- Per provider and agent: time from DELIVERED to READ in seconds, by nearest rank (p50 of
-- 1, 2, 3, 4 is 2). A negative one (clocks of different senders) is left out and counted
-- as out of order.
WITH durations AS (
  SELECT
    provider,
    agent,
    TIMESTAMP_DIFF(read_time, delivered_time, MICROSECOND) / 1000000 AS seconds
  FROM `${dataset}.business_messages`
  WHERE read_time IS NOT NULL AND delivered_time IS NOT NULL
),
percentiles AS (
  SELECT
    provider,
    agent,
    seconds >= 0 AS in_order,
    PERCENTILE_DISC(seconds, 0.5) OVER (PARTITION BY provider, agent, seconds >= 0) AS p50,
    PERCENTILE_DISC(seconds, 0.9) OVER (PARTITION BY provider, agent, seconds >= 0) AS p90,
    PERCENTILE_DISC(seconds, 0.99) OVER (PARTITION BY provider, agent, seconds >= 0) AS p99
  FROM durations
)
SELECT
  provider,
  agent,
  COUNTIF(in_order) AS samples,
  MAX(IF(in_order, p50, NULL)) AS p50_seconds,
  MAX(IF(in_order, p90, NULL)) AS p90_seconds,
  MAX(IF(in_order, p99, NULL)) AS p99_seconds,
  COUNTIF(NOT in_order) AS out_of_order
FROM percentiles
GROUP BY provider, agent
