locals {
  # Null while no provider that pushes to the webhook is on (Chat App's queue mode alone).
  webhook_url = try(google_cloudfunctions2_function.pipeline["webhook"].service_config[0].uri, null)
}

output "webhook_url" {
  description = "The webhook: register it with Business Messages as is."
  value       = local.webhook_url
}

output "rbm_webhook_url" {
  description = "The URL to register as the RBM partner (or agent) webhook, with a value of the rbm-client-token secret as its client token."
  value       = var.rbm_enabled ? "${local.webhook_url}/rbm" : null
}

output "whatsapp_webhook_url" {
  description = "The Callback URL to paste in the Meta App Dashboard (WhatsApp > Configuration), with a value of the whatsapp-verify-token secret as the Verify token."
  value       = var.whatsapp_enabled ? "${local.webhook_url}/whatsapp" : null
}

output "chatapp_callback_urls" {
  description = "The URLs to paste into the Chat App console, with TOKEN replaced by a value of the chatapp-callback-tokens secret."
  value = var.chatapp_enabled ? {
    for kind in ["status", "inbound", "audit"] :
    kind => "${local.webhook_url}/chatapp/${kind}/TOKEN"
  } : {}
}

output "functions" {
  description = "Deployed function names."
  value       = { for name, fn in google_cloudfunctions2_function.pipeline : name => fn.name }
}

output "topics" {
  description = "Topics the webhook publishes to, and the dead-letter topic."
  value       = merge({ for key, topic in google_pubsub_topic.pipeline : key => topic.name }, { "dead-letter" = google_pubsub_topic.dead_letter.name })
}

output "subscriptions" {
  description = "Push subscriptions, and the dead-letter subscription to inspect and replay from."
  value       = merge({ for key, sub in google_pubsub_subscription.push : key => sub.name }, { "dead-letter" = google_pubsub_subscription.dead_letter.name })
}

output "secrets" {
  description = "Secrets to give a value with `make secrets` before the first request."
  value       = [for secret in google_secret_manager_secret.pipeline : secret.secret_id]
}

output "service_accounts" {
  description = "Each function's identity; authorise agent-read-receipts in the RBM (or Business Messages) partner account."
  value       = local.function_accounts
}

output "source_bucket" {
  description = "Bucket holding the functions' zipped sources."
  value       = google_storage_bucket.sources.name
}

output "monitoring" {
  description = "The dashboard (Monitoring > Dashboards, named after name_prefix), the alert policies, the log-based metrics, and the channels every alert notifies."
  value = {
    dashboard = google_monitoring_dashboard.pipeline.id
    alert_policies = {
      dead_letters              = google_monitoring_alert_policy.dead_letters.name
      backlog_age               = google_monitoring_alert_policy.backlog_age.name
      webhook_auth_failures     = try(google_monitoring_alert_policy.webhook["auth_failures"].name, null)
      webhook_5xx               = try(google_monitoring_alert_policy.webhook["5xx"].name, null)
      spool                     = google_monitoring_alert_policy.spool.name
      read_receipts_failed      = google_monitoring_alert_policy.read_receipts_failed.name
      read_credentials_rejected = google_monitoring_alert_policy.read_credentials_rejected.name
    }
    log_metrics = concat(
      [for metric in google_logging_metric.receipts : metric.name],
      [google_logging_metric.read_receipts.name, google_logging_metric.read_credentials_rejected.name, google_logging_metric.spool_drains.name, google_logging_metric.spool_not_empty.name],
    )
    notification_channels = local.notification_channels
  }
}

output "replay_command" {
  description = "`make replay` for this deployment (its project, spool database, dead-letter subscription and topics); append ARGS=list or ARGS=\"redrive dead-letters|parked|spool [ids]\"."
  value       = local.replay
}

output "changes" {
  description = "The change stream's topic, and its consumers where switched on: the push subscription and the account whose email its OIDC tokens carry (with their audience), the BigQuery table and views, and the dead-letter subscription of both."
  value = {
    topic                    = local.changes_topic.name
    push_subscription        = one(google_pubsub_subscription.changes_push[*].name)
    push_service_account     = one(google_service_account.changes_push[*].email)
    push_audience            = local.changes_push_on ? local.changes_push_audience : null
    bigquery_table           = one([for table in google_bigquery_table.changes : "${var.project_id}.${table.dataset_id}.${table.table_id}"])
    bigquery_views           = sort([for view in merge(google_bigquery_table.events, google_bigquery_table.messages, google_bigquery_table.metrics) : view.table_id])
    dead_letter_subscription = one(google_pubsub_subscription.changes_dead_letter[*].name)
  }
}
