# Functions with a schedule in pipeline.json: the spool's drainer runs every minute.

resource "google_cloud_scheduler_job" "pipeline" {
  for_each = { for name, fn in local.functions : name => fn if fn.trigger == "schedule" }

  name             = "${var.name_prefix}-${each.key}"
  region           = var.region
  schedule         = each.value.schedule
  time_zone        = "Etc/UTC"
  attempt_deadline = "${each.value.timeout_seconds}s"

  retry_config {
    retry_count = 0 # the next run, a minute later, is the retry
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.pipeline[each.key].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = google_cloudfunctions2_function.pipeline[each.key].service_config[0].uri
    }
  }

  depends_on = [google_project_service.required]
}
