# The functions' deployable sources: `make build` assembles build/<function>/ (the
# function, the modules of shared/ it imports and its pinned requirements); each is zipped and uploaded under its
# content hash, so a code change creates a new object and redeploys the function.

resource "google_storage_bucket" "sources" {
  #checkov:skip=CKV_GCP_62:Holds only build artifacts that Terraform writes; object changes are already in Terraform state and Cloud Audit Logs.
  name                        = "${var.project_id}-${var.name_prefix}-sources"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      num_newer_versions = 3
    }
    action {
      type = "Delete"
    }
  }
}

data "archive_file" "source" {
  for_each = local.functions

  type        = "zip"
  source_dir  = "${path.module}/../build/${each.key}"
  output_path = "${path.module}/../build/${each.key}.zip"
}

resource "google_storage_bucket_object" "source" {
  for_each = local.functions

  name   = "${each.key}/${data.archive_file.source[each.key].output_md5}.zip"
  bucket = google_storage_bucket.sources.name
  source = data.archive_file.source[each.key].output_path
}

# The functions' container images, which Cloud Build builds from those sources; the build
# account may write here and nowhere else in Artifact Registry.
resource "google_artifact_registry_repository" "functions" {
  #checkov:skip=CKV_GCP_84:Google-managed encryption at rest; the images hold the functions' code, built from sources that are in this repository, and no secret or event. Add kms_key_name here to use CMEK.
  location      = var.region
  repository_id = "${var.name_prefix}-functions"
  description   = "Container images of the receipt pipeline's functions, built by Cloud Build."
  format        = "DOCKER"

  depends_on = [google_project_service.required]
}
