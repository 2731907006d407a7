# The functions' deployable sources: `make build` assembles build/<function>/ (the
# function, shared/ and its pinned requirements); each is zipped and uploaded under its
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
