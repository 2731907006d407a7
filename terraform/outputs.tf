output "webhook_url" {
  description = "The webhook: register it with Business Messages as is."
  value       = google_cloudfunctions2_function.pipeline["webhook"].service_config[0].uri
}

output "rbm_webhook_url" {
  description = "The URL to register as the RBM partner (or agent) webhook, with a value of the rbm-client-token secret as its client token."
  value       = var.rbm_enabled ? "${google_cloudfunctions2_function.pipeline["webhook"].service_config[0].uri}/rbm" : null
}

output "chatapp_callback_urls" {
  description = "The URLs to paste into the Chat App console, with TOKEN replaced by a value of the chatapp-callback-tokens secret."
  value = var.chatapp_enabled ? {
    for kind in ["status", "inbound", "audit"] :
    kind => "${google_cloudfunctions2_function.pipeline["webhook"].service_config[0].uri}/chatapp/${kind}/TOKEN"
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
