-- Per provider, agent and error code ('(no code)' when the receipt gave none): failed
-- business messages, with the provider's description of the code where one was given (the
-- most frequent one; on a tie, the first in text order).
WITH failed AS (
  SELECT provider, agent, error_code, error_description
  FROM `${dataset}.business_messages`
  WHERE failed_time IS NOT NULL
),
descriptions AS (
  SELECT provider, agent, error_code, error_description
  FROM failed
  WHERE error_description IS NOT NULL
  GROUP BY provider, agent, error_code, error_description
  QUALIFY ROW_NUMBER() OVER (PARTITION BY provider, agent, error_code ORDER BY COUNT(*) DESC, error_description) = 1
)
SELECT
  failed.provider,
  failed.agent,
  failed.error_code,
  COUNT(*) AS failures,
  MAX(descriptions.error_description) AS error_description
FROM failed
LEFT JOIN descriptions
  ON descriptions.provider = failed.provider
  AND descriptions.agent = failed.agent
  AND descriptions.error_code = failed.error_code
GROUP BY failed.provider, failed.agent, failed.error_code
