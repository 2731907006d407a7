# One service account per function, each granted only what it uses; no basic roles.

resource "google_service_account" "function" {
  for_each = { for name, _ in local.functions : name => name if !contains(keys(local.external_accounts), name) }

  account_id   = "${var.name_prefix}-${local.functions[each.key].account}" # at most 30 characters
  display_name = "Receipt pipeline: ${each.key} function"
}

# Pub/Sub's pushes and Cloud Scheduler's calls to the private functions carry this
# account's OIDC token.
resource "google_service_account" "push" {
  account_id   = "${var.name_prefix}-push"
  display_name = "Receipt pipeline: invoker of the private functions"
}

# Cloud Build builds the functions' containers as this account.
resource "google_service_account" "build" {
  account_id   = "${var.name_prefix}-build"
  display_name = "Receipt pipeline: function builds"
}

resource "google_pubsub_topic_iam_member" "publisher" {
  for_each = local.topic_publishers

  topic  = google_pubsub_topic.pipeline[each.value.topic].id
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${local.function_accounts[each.value.function]}"
}

resource "google_secret_manager_secret_iam_member" "accessor" {
  for_each = local.secret_readers

  secret_id = google_secret_manager_secret.pipeline[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${local.function_accounts[each.value.function]}"
}

# Firestore roles are granted on the project; each grant's condition confines it to one
# database (IAM conditions on Firestore select databases, not collections).
resource "google_project_iam_member" "firestore_user" {
  for_each = local.firestore_users

  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${local.function_accounts[each.value.function]}"

  condition {
    title      = "${each.value.database}-database-only"
    expression = "resource.name == \"projects/${var.project_id}/databases/${local.firestore_databases[each.value.database]}\""
  }
}

# Only the invoker may call the private functions (the subscribers and the drainer).
resource "google_cloud_run_v2_service_iam_member" "push_invoker" {
  for_each = { for name, fn in local.functions : name => fn if !fn.public }

  location = var.region
  name     = google_cloudfunctions2_function.pipeline[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.push.email}"
}

# The webhook is the one public endpoint: providers call it without Google credentials,
# and it authenticates every request itself (signature, handshake, callback token). It is
# deployed while a provider that pushes to it is on (Chat App's queue mode alone needs none).
resource "google_cloud_run_v2_service_iam_member" "public_webhook" {
  for_each = { for name, fn in local.functions : name => fn if fn.public }

  location = var.region
  name     = google_cloudfunctions2_function.pipeline[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

moved {
  from = google_cloud_run_v2_service_iam_member.public_webhook
  to   = google_cloud_run_v2_service_iam_member.public_webhook["webhook"]
}

# The Pub/Sub and Cloud Scheduler service agents mint the invoker's OIDC tokens.
resource "google_service_account_iam_member" "token_creator" {
  for_each = {
    pubsub    = local.pubsub_service_agent
    scheduler = local.scheduler_service_agent
  }

  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = each.value
}

# Build logs go to Cloud Logging, which authorises writing log entries on the project (or
# folder, organisation), not on a narrower resource; the role can only write entries.
resource "google_project_iam_member" "build_writes_logs" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.build.email}"
}

moved {
  from = google_project_iam_member.build["roles/logging.logWriter"]
  to   = google_project_iam_member.build_writes_logs
}

# The build pushes each function's image to the functions' repository, and to nothing else.
resource "google_artifact_registry_repository_iam_member" "build_pushes_images" {
  location   = google_artifact_registry_repository.functions.location
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}

resource "google_storage_bucket_iam_member" "build_reads_sources" {
  bucket = google_storage_bucket.sources.name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.build.email}"
}
