# Every function under functions/, with the settings in pipeline.json. The subscribers are
# plain HTTP functions fed by the push subscriptions in pubsub.tf: Terraform owns those
# subscriptions (ack deadline, retry and dead-letter policy), which an Eventarc trigger
# would not allow.

resource "google_cloudfunctions2_function" "pipeline" {
  #checkov:skip=CKV_GCP_124:Only the webhook (public = true) takes ALLOW_ALL, because providers call it from the internet; the subscribers are ALLOW_INTERNAL_ONLY.
  for_each = local.functions

  name        = "${var.name_prefix}-${each.key}"
  location    = var.region
  description = each.value.why

  build_config {
    runtime           = "python311" # .python-version (tests/unit/test_python_version.py)
    entry_point       = each.value.entry_point
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.sources.name
        object = google_storage_bucket_object.source[each.key].name
      }
    }
  }

  service_config {
    available_memory                 = each.value.memory
    available_cpu                    = each.value.cpu
    timeout_seconds                  = each.value.timeout_seconds
    max_instance_request_concurrency = each.value.concurrency
    max_instance_count               = each.value.max_instances
    min_instance_count               = each.value.min_instances
    service_account_email            = local.function_accounts[each.key]
    ingress_settings                 = each.value.public ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    environment_variables            = each.value.env

    dynamic "secret_environment_variables" {
      for_each = each.value.secrets

      content {
        key        = secret_environment_variables.key
        project_id = var.project_id
        secret     = google_secret_manager_secret.pipeline[secret_environment_variables.value].secret_id
        version    = "latest"
      }
    }
  }

  depends_on = [
    google_project_service.required,
    google_project_iam_member.build_writes_logs,
    google_artifact_registry_repository_iam_member.build_pushes_images,
    google_storage_bucket_iam_member.build_reads_sources,
    google_secret_manager_secret_iam_member.accessor,
  ]
}
