# The topics the webhook publishes to, the push subscriptions that feed the subscribers,
# and the dead-letter topic where a message lands after max_delivery_attempts.

resource "google_pubsub_topic" "pipeline" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption at rest; events hold no more than the provider already sent over TLS. Add kms_key_name here to use CMEK.
  for_each = local.pipeline.topics

  name                       = "${var.name_prefix}-${each.key}"
  message_retention_duration = "604800s" # 7 days: time to replay after an incident
}

resource "google_pubsub_topic" "dead_letter" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption at rest, as for the pipeline topics.
  name                       = "${var.name_prefix}-dead-letter"
  message_retention_duration = "604800s"
}

resource "google_pubsub_subscription" "push" {
  for_each = local.pipeline.subscriptions

  name  = "${var.name_prefix}-${each.key}"
  topic = google_pubsub_topic.pipeline[each.value.topic].id

  # For push, the ack deadline is also the request timeout: the function's own timeout.
  ack_deadline_seconds       = local.functions[each.value.function].timeout_seconds
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  push_config {
    push_endpoint = google_cloudfunctions2_function.pipeline[each.value.function].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = google_cloudfunctions2_function.pipeline[each.value.function].service_config[0].uri
    }
  }

  depends_on = [google_pubsub_topic_iam_member.dead_letter_publisher]
}

# Without a subscription of its own, what reaches the dead-letter topic would be lost.
resource "google_pubsub_subscription" "dead_letter" {
  name                       = "${var.name_prefix}-dead-letter"
  topic                      = google_pubsub_topic.dead_letter.id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

# The two grants the Pub/Sub service agent needs to dead-letter a message.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  topic  = google_pubsub_topic.dead_letter.id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = local.pipeline.subscriptions

  subscription = google_pubsub_subscription.push[each.key].id
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}
