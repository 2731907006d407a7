-- Per day (UTC, of each message's first time), provider and agent: business messages
-- delivered (a DELIVERED receipt, or a READ, which implies it), read, failed, and the read
-- rate (read / delivered; NULL when none was delivered).
SELECT
  day,
  provider,
  agent,
  COUNTIF(delivered_time IS NOT NULL OR read_time IS NOT NULL) AS delivered,
  COUNTIF(read_time IS NOT NULL) AS read,
  COUNTIF(failed_time IS NOT NULL) AS failed,
  SAFE_DIVIDE(COUNTIF(read_time IS NOT NULL), COUNTIF(delivered_time IS NOT NULL OR read_time IS NOT NULL)) AS read_rate
FROM `${dataset}.business_messages`
GROUP BY day, provider, agent
