# The secrets exist here; their values never do. Add a version with
#   make secrets SECRET=bm-signing-key FILE=path   (or from stdin without FILE)
# so no value reaches Terraform state or the repository.

resource "google_secret_manager_secret" "pipeline" {
  for_each = local.secrets

  secret_id = "${var.name_prefix}-${each.key}"

  replication {
    auto {}
  }

  depends_on = [google_project_service.required]
}
