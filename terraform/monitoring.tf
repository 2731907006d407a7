# Monitoring as code: log-based metrics over the functions' structured logs, alert policies
# and a dashboard. Generic over pipeline.json: every function, push subscription and public
# (webhook) function is covered without editing this file. Built-in metrics are used where
# they are exact (Cloud Run's request counts and latencies, Pub/Sub's backlog), log-based
# ones only for what only the logs say. Thresholds are the alert_* variables.

resource "google_project_service" "monitoring" {
  service            = "monitoring.googleapis.com"
  disable_on_destroy = false
}

locals {
  # A 2nd gen function runs as the Cloud Run service of its own name.
  services        = { for name, fn in google_cloudfunctions2_function.pipeline : name => fn.name }
  public_services = [for name, fn in local.functions : local.services[name] if fn.public]

  # The log lines the metrics read, as the functions write them (tests compare with the code).
  # Cloud Run parses each JSON line: `message` becomes jsonPayload.message.
  log_messages = {
    recorded     = "event recorded"             # functions/record_events/main.py
    read_settled = "agent READ receipt settled" # functions/agent_read_receipts/main.py
    drained      = "spool drained"              # functions/drain_spool/main.py
  }
  log_scope = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=(${join(" OR ", [for service in values(local.services) : "\"${service}\""])})",
  ])

  # One metric per enabled provider and status: a log entry counts once per metric, and one
  # Chat App batch mixes statuses, so a status label on one metric could not count them.
  # Chat App's queue mode records its receipts as Chat App.
  recording_providers = distinct([
    for provider in local.enabled_providers : provider == "chatapp-smq" ? "chatapp" : provider
  ])
  receipt_metrics = merge([
    for provider in local.recording_providers : {
      for status in lookup(var.receipt_statuses, provider, []) :
      "${provider}-${status}" => { provider = provider, status = status }
    }
  ]...)

  dead_letter_subscriptions = [google_pubsub_subscription.dead_letter.name]
  push_subscriptions        = [for subscription in google_pubsub_subscription.push : subscription.name]

  notification_channels = concat(
    var.alert_notification_channels,
    [for email in var.alert_emails : google_monitoring_notification_channel.email[email].name],
  )

  # Monitoring filters (not the Logging language of the metrics above).
  run_revisions            = "resource.type = \"cloud_run_revision\""
  webhook_services         = "resource.label.service_name = one_of(${join(", ", [for s in local.public_services : "\"${s}\""])})"
  pipeline_services        = "resource.label.service_name = one_of(${join(", ", [for s in values(local.services) : "\"${s}\""])})"
  push_one_of              = "resource.label.subscription_id = one_of(${join(", ", [for s in local.push_subscriptions : "\"${s}\""])})"
  dead_letter_one_of       = "resource.label.subscription_id = one_of(${join(", ", [for s in local.dead_letter_subscriptions : "\"${s}\""])})"
  all_subscriptions        = "resource.label.subscription_id = one_of(${join(", ", [for s in concat(local.push_subscriptions, local.dead_letter_subscriptions) : "\"${s}\""])})"
  pubsub_subscription      = "resource.type = \"pubsub_subscription\""
  changes_consumers_one_of = "resource.label.subscription_id = one_of(${join(", ", [for s in concat(google_pubsub_subscription.changes_push[*].name, google_pubsub_subscription.changes_bigquery[*].name) : "\"${s}\""])})"
  runbook                  = "All alerts: docs/deploy-to-google-cloud.md, What each alert means."

  # `make replay` on this deployment (with Application Default Credentials): the names differ
  # from the code's defaults once name_prefix does, and the spool has its own database.
  replay = join(" ", concat(
    [
      "GOOGLE_CLOUD_PROJECT=${var.project_id}",
      "SPOOL_DATABASE=${google_firestore_database.spool.name}",
      "SPOOL_MAX_ATTEMPTS=${var.spool_max_attempts}",
      "DEAD_LETTER_SUBSCRIPTION=${google_pubsub_subscription.dead_letter.name}",
    ],
    [for key in keys(local.pipeline.topics) : "${upper(key)}_TOPIC=${google_pubsub_topic.pipeline[key].name}"],
    ["make replay"],
  ))
  secrets_command = "make secrets PROJECT=${var.project_id} NAME_PREFIX=${var.name_prefix}"

  # Each alert's documentation is a template in docs/runbooks/, the one text the docs link to
  # (tests/unit/test_runbooks.py: one file per policy). These fill it in for this deployment;
  # `subscription` and `provider` become Monitoring's own variables, filled in per incident.
  runbooks = "${path.module}/../docs/runbooks"
  runbook_values = {
    max_delivery_attempts  = var.max_delivery_attempts
    oldest_unacked_seconds = var.alert_oldest_unacked_seconds
    webhook_auth_failures  = var.alert_webhook_auth_failures
    webhook_5xx            = var.alert_webhook_5xx
    spool_minutes          = var.alert_spool_minutes
    drainer_silent_minutes = var.alert_drainer_silent_minutes
    replay                 = local.replay
    secrets_command        = local.secrets_command
    webhook_secrets        = join(", ", [for secret in local.secrets : "`${secret}`"])
    scheduler_jobs         = join(", ", [for job in google_cloud_scheduler_job.pipeline : "`${job.name}`"])
    project_id             = var.project_id
    region                 = var.region
    changes_dead_letter    = one(google_pubsub_subscription.changes_dead_letter[*].name)
    read_settled           = local.log_messages.read_settled
    subscription           = "$${resource.label.subscription_id}"
    provider               = "$${metric.label.provider}"
  }
}

# --- Notification channels ---------------------------------------------------------------

resource "google_monitoring_notification_channel" "email" {
  for_each = toset(var.alert_emails)

  display_name = "${var.name_prefix} alerts: ${each.value}"
  type         = "email"
  labels = {
    email_address = each.value
  }

  depends_on = [google_project_service.monitoring]
}

# --- Log-based metrics -------------------------------------------------------------------

resource "google_logging_metric" "receipts" {
  for_each = local.receipt_metrics

  name        = "${var.name_prefix}-receipts-${each.key}"
  description = "${each.value.status} receipts of ${each.value.provider} handled by the recorder (redeliveries included), from its \"${local.log_messages.recorded}\" line."
  filter = join(" AND ", [
    local.log_scope,
    "jsonPayload.message=\"${local.log_messages.recorded}\"",
    "jsonPayload.provider=\"${each.value.provider}\"",
    "jsonPayload.receiptStatuses.${each.value.status}:*",
  ])
  value_extractor = "EXTRACT(jsonPayload.receiptStatuses.${each.value.status})"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "DISTRIBUTION"
    unit         = "1"
    display_name = "${each.value.provider} ${each.value.status} receipts"
  }

  # Receipts per log line: 1 for RBM, up to 1,000 for a Chat App batch.
  bucket_options {
    exponential_buckets {
      num_finite_buckets = 11
      growth_factor      = 2
      scale              = 1
    }
  }
}

resource "google_logging_metric" "read_receipts" {
  name        = "${var.name_prefix}-read-receipts"
  description = "Agent READ receipts settled, by final state (SENT, FAILED) and provider; a redelivered message logs its state again."
  filter = join(" AND ", [
    local.log_scope,
    "jsonPayload.message=\"${local.log_messages.read_settled}\"",
  ])
  label_extractors = {
    state    = "EXTRACT(jsonPayload.state)"
    provider = "EXTRACT(jsonPayload.provider)"
  }

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Agent READ receipts settled"

    labels {
      key         = "state"
      value_type  = "STRING"
      description = "SENT or FAILED"
    }
    labels {
      key         = "provider"
      value_type  = "STRING"
      description = "rbm, bm or whatsapp"
    }
  }
}

# The READ function marks a settled READ whose API refused the credential itself (WhatsApp's
# error 190, any provider's HTTP 401): every later READ of that provider fails the same way.
resource "google_logging_metric" "read_credentials_rejected" {
  name        = "${var.name_prefix}-read-credentials-rejected"
  description = "Agent READ receipts that failed because the provider's API refused the credential (WhatsApp's error 190, any HTTP 401), by provider."
  filter = join(" AND ", [
    local.log_scope,
    "jsonPayload.message=\"${local.log_messages.read_settled}\"",
    "jsonPayload.credentialsRejected=true",
  ])
  label_extractors = {
    provider = "EXTRACT(jsonPayload.provider)"
  }

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Agent READ receipts refused for their credentials"

    labels {
      key         = "provider"
      value_type  = "STRING"
      description = "rbm, bm or whatsapp"
    }
  }
}

resource "google_logging_metric" "spool_drains" {
  name        = "${var.name_prefix}-spool-drains"
  description = "Runs of the spool's drainer (every minute): its absence means the spool is not being drained."
  filter = join(" AND ", [
    local.log_scope,
    "jsonPayload.message=\"${local.log_messages.drained}\"",
  ])

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Spool drain runs"
  }
}

resource "google_logging_metric" "spool_not_empty" {
  name        = "${var.name_prefix}-spool-not-empty"
  description = "Drain runs that ended with events still in the spool (a full batch, or events that failed to publish)."
  filter = join(" AND ", [
    local.log_scope,
    "jsonPayload.message=\"${local.log_messages.drained}\"",
    "jsonPayload.remaining=true",
  ])

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "Drain runs ending with the spool not empty"
  }
}

# --- Alert policies ----------------------------------------------------------------------
# Counts are summed over every revision (REDUCE_SUM), so a deploy neither splits nor ends a
# series; a count with no event in its window has no data, which closes the incident.
# A policy on a log-based metric created in the same apply can fail with "Cannot find
# metric(s)" for up to 10 minutes (hashicorp/terraform-provider-google#11102): apply again.

resource "google_monitoring_alert_policy" "dead_letters" {
  display_name          = "${var.name_prefix}: messages in the dead-letter subscription"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "Dead letters waiting > ${var.alert_dead_letters}"

    condition_threshold {
      filter          = join(" AND ", [local.pubsub_subscription, local.dead_letter_one_of, local.undelivered])
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_dead_letters
      duration        = "0s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: dead letters waiting"
    content   = join("\n", [templatefile("${local.runbooks}/dead-letters.md", local.runbook_values), local.runbook])
  }

  depends_on = [google_project_service.monitoring]
}

# The change stream's consumers, when one is switched on (changes.tf): a consumer that does
# not take its events, or events dead-lettered on their way to it.
resource "google_monitoring_alert_policy" "changes_undelivered" {
  count = local.changes_dlq_on ? 1 : 0

  display_name          = "${var.name_prefix}: change stream not delivered"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.notification_channels

  conditions {
    display_name = "Oldest unacknowledged event older than ${var.alert_oldest_unacked_seconds} s"

    condition_threshold {
      filter          = join(" AND ", [local.pubsub_subscription, local.changes_consumers_one_of, "metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""])
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_oldest_unacked_seconds
      duration        = "0s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  conditions {
    display_name = "Dead-lettered events waiting > ${var.alert_dead_letters}"

    condition_threshold {
      filter          = join(" AND ", [local.pubsub_subscription, "resource.label.subscription_id = \"${one(google_pubsub_subscription.changes_dead_letter[*].name)}\"", local.undelivered])
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_dead_letters
      duration        = "0s"

      aggregations {
        alignment_period   = "300s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: the change stream is not reaching $${resource.label.subscription_id}"
    content   = join("\n", [templatefile("${local.runbooks}/change-stream-undelivered.md", local.runbook_values), local.runbook])
  }

  depends_on = [google_project_service.monitoring]
}

resource "google_monitoring_alert_policy" "backlog_age" {
  display_name          = "${var.name_prefix}: push subscription backlog too old"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels

  conditions {
    # No cross-series reducer: each subscription is its own series and its own incident.
    display_name = "Oldest unacknowledged message older than ${var.alert_oldest_unacked_seconds} s"

    condition_threshold {
      filter          = join(" AND ", [local.pubsub_subscription, local.push_one_of, "metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""])
      comparison      = "COMPARISON_GT"
      threshold_value = var.alert_oldest_unacked_seconds
      duration        = "0s"

      aggregations {
        alignment_period   = "60s"
        per_series_aligner = "ALIGN_MAX"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: $${resource.label.subscription_id} is falling behind"
    content   = join("\n", [templatefile("${local.runbooks}/backlog-age.md", local.runbook_values), local.runbook])
  }

  depends_on = [google_project_service.monitoring]
}

# Counted by Cloud Run itself, every answer: the webhook's refusal lines are rate-limited.
locals {
  webhook_answers = {
    auth_failures = {
      title     = "webhook authentication failures"
      answers   = "401/403"
      filter    = "metric.label.response_code = one_of(\"401\", \"403\")"
      threshold = var.alert_webhook_auth_failures
      severity  = "WARNING"
      subject   = "webhook refusing many requests as unauthenticated"
      runbook   = "webhook-auth-failures.md"
    }
    "5xx" = {
      title     = "webhook answering 5xx"
      answers   = "5xx"
      filter    = "metric.label.response_code_class = \"5xx\""
      threshold = var.alert_webhook_5xx
      severity  = "CRITICAL"
      subject   = "webhook refusing events (5xx)"
      runbook   = "webhook-5xx.md"
    }
  }
}

resource "google_monitoring_alert_policy" "webhook" {
  for_each = length(local.public_services) > 0 ? local.webhook_answers : {}

  display_name          = "${var.name_prefix}: ${each.value.title}"
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = local.notification_channels

  conditions {
    display_name = "${each.value.answers} answers in 5 minutes > ${each.value.threshold}"

    condition_threshold {
      filter                  = join(" AND ", [local.run_revisions, local.webhook_services, "metric.type = \"run.googleapis.com/request_count\"", each.value.filter])
      comparison              = "COMPARISON_GT"
      threshold_value         = each.value.threshold
      duration                = "0s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: ${each.value.subject}"
    content   = join("\n", [templatefile("${local.runbooks}/${each.value.runbook}", local.runbook_values), local.runbook])
  }

  depends_on = [google_project_service.monitoring]
}

resource "google_monitoring_alert_policy" "spool" {
  display_name          = "${var.name_prefix}: spool not draining"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels

  conditions {
    # The drainer runs every minute: each 2-minute window holds a run while the spool holds events.
    display_name = "Spool not empty for ${var.alert_spool_minutes} minutes"

    condition_threshold {
      filter                  = join(" AND ", [local.run_revisions, "metric.type = \"logging.googleapis.com/user/${google_logging_metric.spool_not_empty.name}\""])
      comparison              = "COMPARISON_GT"
      threshold_value         = 0
      duration                = "${var.alert_spool_minutes * 60}s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"

      aggregations {
        alignment_period     = "120s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  conditions {
    display_name = "No drain run for ${var.alert_drainer_silent_minutes} minutes"

    condition_absent {
      filter   = join(" AND ", [local.run_revisions, "metric.type = \"logging.googleapis.com/user/${google_logging_metric.spool_drains.name}\""])
      duration = "${var.alert_drainer_silent_minutes * 60}s"

      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: the spool is not draining"
    content   = join("\n", [templatefile("${local.runbooks}/spool.md", local.runbook_values), local.runbook])
  }

  depends_on = [google_project_service.monitoring]
}

resource "google_monitoring_alert_policy" "read_receipts_failed" {
  display_name          = "${var.name_prefix}: agent READ receipts failing"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = local.notification_channels

  conditions {
    display_name = "FAILED READ receipts in 5 minutes > ${var.alert_read_receipt_failures}"

    condition_threshold {
      filter                  = join(" AND ", [local.run_revisions, "metric.type = \"logging.googleapis.com/user/${google_logging_metric.read_receipts.name}\"", "metric.label.state = \"FAILED\""])
      comparison              = "COMPARISON_GT"
      threshold_value         = var.alert_read_receipt_failures
      duration                = "0s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.provider"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: $${metric.label.provider} READ receipts failing"
    content   = join("\n", [templatefile("${local.runbooks}/read-receipts-failed.md", local.runbook_values), local.runbook])
  }

  depends_on = [google_project_service.monitoring]
}

resource "google_monitoring_alert_policy" "read_credentials_rejected" {
  display_name          = "${var.name_prefix}: agent READ credentials rejected"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = local.notification_channels

  conditions {
    display_name = "READ receipts refused for their credentials in 5 minutes > 0"

    condition_threshold {
      filter                  = join(" AND ", [local.run_revisions, "metric.type = \"logging.googleapis.com/user/${google_logging_metric.read_credentials_rejected.name}\""])
      comparison              = "COMPARISON_GT"
      threshold_value         = 0
      duration                = "0s"
      evaluation_missing_data = "EVALUATION_MISSING_DATA_INACTIVE"

      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.provider"]
      }
    }
  }

  documentation {
    mime_type = "text/markdown"
    subject   = "${var.name_prefix}: $${metric.label.provider} READ credentials rejected"
    content   = join("\n", [templatefile("${local.runbooks}/read-credentials-rejected.md", local.runbook_values), local.runbook])
  }

  depends_on = [google_project_service.monitoring]
}

# --- Dashboard ---------------------------------------------------------------------------

locals {
  # Cloud Monitoring charts a distribution's sum only through PromQL (`_sum`); each metric's
  # provider and status become labels so one chart shows them all.
  receipts_promql = join(" or ", [
    for key, metric in google_logging_metric.receipts : format(
      "label_replace(label_replace(60 * sum(rate(%s{monitored_resource=\"cloud_run_revision\"}[1m])), \"provider\", \"%s\", \"\", \"\"), \"status\", \"%s\", \"\", \"\")",
      "logging_googleapis_com:user_${replace(metric.name, "-", "_")}_sum",
      local.receipt_metrics[key].provider,
      local.receipt_metrics[key].status,
    )
  ])

  latency_percentiles = { p50 = "REDUCE_PERCENTILE_50", p95 = "REDUCE_PERCENTILE_95", p99 = "REDUCE_PERCENTILE_99" }
  # Counts per minute, summed over revisions; gauges (Pub/Sub's backlog) at their minute's maximum.
  per_minute  = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_SUM", crossSeriesReducer = "REDUCE_SUM" }
  gauge       = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_MAX" }
  undelivered = "metric.type = \"pubsub.googleapis.com/subscription/num_undelivered_messages\""

  # Each chart: a title, the y axis, the alert thresholds drawn on it, and its series (a
  # Monitoring filter, its aggregation, and a legend; "" for the series' own labels).
  # The webhook's charts, while it is deployed (not with Chat App's queue mode alone).
  webhook_charts = [for chart in [
    {
      title = "Webhook acknowledgement latency (ms)", unit = "ms", plot = "LINE", thresholds = []
      series = [for label, reducer in local.latency_percentiles : {
        legend      = label
        filter      = join(" AND ", [local.run_revisions, local.webhook_services, "metric.type = \"run.googleapis.com/request_latencies\""])
        aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_DELTA", crossSeriesReducer = reducer }
      }]
    },
    {
      title = "Webhook answers per minute by status code", unit = "answers/min", plot = "STACKED_BAR", thresholds = []
      series = [{
        legend      = ""
        filter      = join(" AND ", [local.run_revisions, local.webhook_services, "metric.type = \"run.googleapis.com/request_count\""])
        aggregation = merge(local.per_minute, { groupByFields = ["metric.label.response_code"] })
      }]
    },
  ] : chart if length(local.public_services) > 0]
  charts = concat(local.webhook_charts, [
    {
      # A subscriber's answer is its push's acknowledgement.
      title = "Acknowledgement latency p99 by function (ms)", unit = "ms", plot = "LINE", thresholds = []
      series = [{
        legend      = ""
        filter      = join(" AND ", [local.run_revisions, local.pipeline_services, "metric.type = \"run.googleapis.com/request_latencies\""])
        aggregation = { alignmentPeriod = "60s", perSeriesAligner = "ALIGN_DELTA", crossSeriesReducer = "REDUCE_PERCENTILE_99", groupByFields = ["resource.label.service_name"] }
      }]
    },
    {
      title = "Backlog: undelivered messages by subscription", unit = "messages", plot = "LINE", thresholds = []
      series = [{
        legend      = ""
        filter      = join(" AND ", [local.pubsub_subscription, local.all_subscriptions, local.undelivered])
        aggregation = local.gauge
      }]
    },
    {
      title = "Oldest unacknowledged message by push subscription (s)", unit = "s", plot = "LINE", thresholds = [var.alert_oldest_unacked_seconds]
      series = [{
        legend      = ""
        filter      = join(" AND ", [local.pubsub_subscription, local.push_one_of, "metric.type = \"pubsub.googleapis.com/subscription/oldest_unacked_message_age\""])
        aggregation = local.gauge
      }]
    },
    {
      title = "Dead letters waiting", unit = "messages", plot = "LINE", thresholds = [var.alert_dead_letters]
      series = [{
        legend      = ""
        filter      = join(" AND ", [local.pubsub_subscription, local.dead_letter_one_of, local.undelivered])
        aggregation = local.gauge
      }]
    },
    {
      title = "Agent READ receipts per minute by state and provider", unit = "receipts/min", plot = "STACKED_BAR", thresholds = []
      series = [{
        legend      = ""
        filter      = join(" AND ", [local.run_revisions, "metric.type = \"logging.googleapis.com/user/${google_logging_metric.read_receipts.name}\""])
        aggregation = merge(local.per_minute, { groupByFields = ["metric.label.state", "metric.label.provider"] })
      }]
    },
    {
      title = "Agent READ receipts refused for their credentials per minute by provider", unit = "receipts/min", plot = "STACKED_BAR", thresholds = []
      series = [{
        legend      = ""
        filter      = join(" AND ", [local.run_revisions, "metric.type = \"logging.googleapis.com/user/${google_logging_metric.read_credentials_rejected.name}\""])
        aggregation = merge(local.per_minute, { groupByFields = ["metric.label.provider"] })
      }]
    },
    {
      title = "Spool: drain runs per minute, and those ending with events left", unit = "runs/min", plot = "LINE", thresholds = []
      series = [for label, metric in { "runs" = google_logging_metric.spool_drains, "not empty" = google_logging_metric.spool_not_empty } : {
        legend      = label
        filter      = join(" AND ", [local.run_revisions, "metric.type = \"logging.googleapis.com/user/${metric.name}\""])
        aggregation = local.per_minute
      }]
    },
  ])

  receipts_widget = {
    title = "Receipts per minute by provider and status"
    xyChart = {
      dataSets = [{ plotType = "STACKED_AREA", timeSeriesQuery = { prometheusQuery = local.receipts_promql } }]
      yAxis    = { label = "receipts/min", scale = "LINEAR" }
    }
  }

  dashboard_widgets = concat(length(local.receipt_metrics) > 0 ? [local.receipts_widget] : [], [
    for chart in local.charts : {
      title = chart.title
      xyChart = {
        dataSets = [for series in chart.series : {
          plotType        = chart.plot
          legendTemplate  = series.legend
          timeSeriesQuery = { timeSeriesFilter = { filter = series.filter, aggregation = series.aggregation } }
        }]
        thresholds = [for value in chart.thresholds : { value = value, label = "alert", color = "RED", direction = "ABOVE" }]
        yAxis      = { label = chart.unit, scale = "LINEAR" }
      }
    }
  ])
}

resource "google_monitoring_dashboard" "pipeline" {
  dashboard_json = jsonencode({
    displayName = "${var.name_prefix}: receipt pipeline"
    gridLayout = {
      columns = 2
      widgets = local.dashboard_widgets
    }
  })

  depends_on = [google_project_service.monitoring]
}
