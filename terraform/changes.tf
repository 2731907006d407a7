# The change stream's consumers (docs/change-stream.md, docs/change-stream-consumers.md).
# The topic itself is one of pipeline.json's topics: it always exists, and the recorder and
# the READ sender publish to it. Each consumer here is a switch, off by default:
# changes_push_endpoint pushes every event to the business's HTTPS endpoint, and
# analytics_dataset writes every event into BigQuery, with views for the receipt metrics.

locals {
  changes_push_on = var.changes_push_endpoint != ""
  analytics_on    = var.analytics_dataset != ""
  changes_dlq_on  = local.changes_push_on || local.analytics_on
  changes_topic   = google_pubsub_topic.pipeline["changes"]

  changes_push_audience = var.changes_push_audience != "" ? var.changes_push_audience : var.changes_push_endpoint

  # The subscriptions that dead-letter to the stream's own dead-letter topic.
  changes_subscriptions = merge(
    { for sub in google_pubsub_subscription.changes_push : "push" => sub.id },
    { for sub in google_pubsub_subscription.changes_bigquery : "bigquery" => sub.id },
  )

  # The views, one per file of analytics/. Each reads the ones of the layer before it, and
  # BigQuery checks a view's query when it is created, so the layers are created in order.
  analytics_views     = toset([for file in fileset("${path.module}/analytics", "*.sql") : trimsuffix(file, ".sql")])
  analytics_dedupe    = toset(["events"])
  analytics_messages  = toset(["business_messages", "user_messages"])
  analytics_metrics   = setsubtract(local.analytics_views, setunion(local.analytics_dedupe, local.analytics_messages))
  analytics_reference = "${var.project_id}.${var.analytics_dataset}"
}

# Where an event lands after max_delivery_attempts failed deliveries to either consumer.
resource "google_pubsub_topic" "changes_dead_letter" {
  #checkov:skip=CKV_GCP_83:Google-managed encryption at rest, as for the pipeline topics.
  count = local.changes_dlq_on ? 1 : 0

  name                       = "${var.name_prefix}-changes-dead-letter"
  message_retention_duration = "604800s"
}

# Without a subscription of its own, what reaches the dead-letter topic would be lost.
resource "google_pubsub_subscription" "changes_dead_letter" {
  count = local.changes_dlq_on ? 1 : 0

  name                       = "${var.name_prefix}-changes-dead-letter"
  topic                      = google_pubsub_topic.changes_dead_letter[0].id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}

# --- Push to the business's endpoint ----------------------------------------------------

# The pushes' OIDC tokens carry this account's email, and it is used for nothing else, so
# the endpoint can tell the stream's pushes from any other Google-signed token.
resource "google_service_account" "changes_push" {
  count = local.changes_push_on ? 1 : 0

  account_id   = "${var.name_prefix}-changes-push" # at most 30 characters
  display_name = "Receipt pipeline: the change stream's pushes to the business's endpoint"
}

resource "google_pubsub_subscription" "changes_push" {
  count = local.changes_push_on ? 1 : 0

  name  = "${var.name_prefix}-changes-push"
  topic = local.changes_topic.id

  # The time the endpoint has to answer before the push counts as failed.
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.changes_dead_letter[0].id
    max_delivery_attempts = var.max_delivery_attempts
  }

  push_config {
    push_endpoint = var.changes_push_endpoint

    oidc_token {
      service_account_email = google_service_account.changes_push[0].email
      audience              = local.changes_push_audience
    }

    # The request body is the event itself, a structured-mode CloudEvent; the message's
    # attributes are headers (content-type: application/cloudevents+json, type, provider),
    # its metadata x-goog-pubsub-* headers (https://cloud.google.com/pubsub/docs/payload-unwrapping).
    no_wrapper {
      write_metadata = true
    }
  }

  depends_on = [google_pubsub_topic_iam_member.changes_dead_letter_publisher]
}

# --- BigQuery -------------------------------------------------------------------------

resource "google_project_service" "bigquery" {
  count = local.analytics_on ? 1 : 0

  service            = "bigquery.googleapis.com"
  disable_on_destroy = false
}

resource "google_bigquery_dataset" "analytics" {
  #checkov:skip=CKV_GCP_81:Google-managed encryption at rest, as for the topics the events come from. Add default_encryption_configuration to use CMEK.
  count = local.analytics_on ? 1 : 0

  dataset_id  = var.analytics_dataset
  location    = var.region
  description = "The receipt pipeline's change stream (docs/change-stream.md) and the receipt metrics' views."

  depends_on = [google_project_service.bigquery]
}

# The columns a BigQuery subscription writes with write_metadata (and no schema of its own):
# the message's data, the event's JSON, beside its metadata. Rows are at least once: the
# events view dedupes on the event's id.
resource "google_bigquery_table" "changes" {
  #checkov:skip=CKV_GCP_80:Google-managed encryption at rest, as for the dataset.
  count = local.analytics_on ? 1 : 0

  dataset_id          = google_bigquery_dataset.analytics[0].dataset_id
  table_id            = "changes"
  description         = "Every change-stream event as the Pub/Sub BigQuery subscription delivered it (at least once)."
  deletion_protection = true # the events themselves: only a deliberate change drops them

  time_partitioning {
    type  = "DAY"
    field = "publish_time"
  }

  schema = jsonencode([
    { name = "subscription_name", type = "STRING", mode = "NULLABLE" },
    { name = "message_id", type = "STRING", mode = "NULLABLE" },
    { name = "publish_time", type = "TIMESTAMP", mode = "NULLABLE" },
    { name = "data", type = "STRING", mode = "NULLABLE", description = "the CloudEvent, as JSON" },
    { name = "attributes", type = "JSON", mode = "NULLABLE" },
  ])
}

resource "google_pubsub_subscription" "changes_bigquery" {
  count = local.analytics_on ? 1 : 0

  name                       = "${var.name_prefix}-changes-bigquery"
  topic                      = local.changes_topic.id
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.changes_dead_letter[0].id
    max_delivery_attempts = var.max_delivery_attempts
  }

  bigquery_config {
    table          = "${var.project_id}.${google_bigquery_table.changes[0].dataset_id}.${google_bigquery_table.changes[0].table_id}"
    write_metadata = true
  }

  depends_on = [
    google_bigquery_table_iam_member.changes_writer,
    google_pubsub_topic_iam_member.changes_dead_letter_publisher,
  ]
}

resource "google_bigquery_table" "events" {
  #checkov:skip=CKV_GCP_121:A view holds no data: it is its file's query, replaced when the file changes.
  #checkov:skip=CKV_GCP_80:A view holds no data to encrypt; the table it reads is encrypted at rest.
  for_each = local.analytics_on ? local.analytics_dedupe : toset([])

  dataset_id          = google_bigquery_dataset.analytics[0].dataset_id
  table_id            = each.key
  deletion_protection = false # a view holds no data: it is its file's query

  view {
    query          = templatefile("${path.module}/analytics/${each.key}.sql", { dataset = local.analytics_reference })
    use_legacy_sql = false
  }

  depends_on = [google_bigquery_table.changes]
}

resource "google_bigquery_table" "messages" {
  #checkov:skip=CKV_GCP_121:A view holds no data: it is its file's query, replaced when the file changes.
  #checkov:skip=CKV_GCP_80:A view holds no data to encrypt; the table it reads is encrypted at rest.
  for_each = local.analytics_on ? local.analytics_messages : toset([])

  dataset_id          = google_bigquery_dataset.analytics[0].dataset_id
  table_id            = each.key
  deletion_protection = false

  view {
    query          = templatefile("${path.module}/analytics/${each.key}.sql", { dataset = local.analytics_reference })
    use_legacy_sql = false
  }

  depends_on = [google_bigquery_table.events]
}

resource "google_bigquery_table" "metrics" {
  #checkov:skip=CKV_GCP_121:A view holds no data: it is its file's query, replaced when the file changes.
  #checkov:skip=CKV_GCP_80:A view holds no data to encrypt; the table it reads is encrypted at rest.
  for_each = local.analytics_on ? local.analytics_metrics : toset([])

  dataset_id          = google_bigquery_dataset.analytics[0].dataset_id
  table_id            = each.key
  deletion_protection = false

  view {
    query          = templatefile("${path.module}/analytics/${each.key}.sql", { dataset = local.analytics_reference })
    use_legacy_sql = false
  }

  depends_on = [google_bigquery_table.messages]
}

# --- IAM ------------------------------------------------------------------------------

# The functions that record changes publish them; nothing else may (pipeline.json's
# publishes_to gives them the topic-level grant, iam.tf's `publisher`).

# What the Pub/Sub service agent needs, on these resources only:
# - publisher on the dead-letter topic and subscriber on each source subscription, to
#   dead-letter (https://cloud.google.com/pubsub/docs/handling-failures);
# - Service Account Token Creator on the push's account, to mint its OIDC tokens
#   (https://cloud.google.com/pubsub/docs/create-push-subscription, "Authentication",
#   and https://cloud.google.com/pubsub/docs/authenticate-push-subscriptions);
# - BigQuery Data Editor on the table it writes, granted on the table rather than the
#   project (https://cloud.google.com/pubsub/docs/create-bigquery-subscription, "Grant
#   IAM roles to the service account").
resource "google_pubsub_topic_iam_member" "changes_dead_letter_publisher" {
  count = local.changes_dlq_on ? 1 : 0

  topic  = google_pubsub_topic.changes_dead_letter[0].id
  role   = "roles/pubsub.publisher"
  member = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "changes_dead_letter_subscriber" {
  for_each = local.changes_subscriptions

  subscription = each.value
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

resource "google_service_account_iam_member" "changes_push_token_creator" {
  count = local.changes_push_on ? 1 : 0

  service_account_id = google_service_account.changes_push[0].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

resource "google_bigquery_table_iam_member" "changes_writer" {
  count = local.analytics_on ? 1 : 0

  project    = var.project_id
  dataset_id = google_bigquery_table.changes[0].dataset_id
  table_id   = google_bigquery_table.changes[0].table_id
  role       = "roles/bigquery.dataEditor"
  member     = local.pubsub_service_agent
}
