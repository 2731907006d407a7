resource "google_firestore_database" "main" {
  name        = "(default)"
  location_id = var.firestore_location
  type        = "FIRESTORE_NATIVE"
  # The recorder commits with preconditions, not transactions: optimistic concurrency
  # never holds locks.
  concurrency_mode                  = "OPTIMISTIC"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  deletion_policy                   = "ABANDON"

  depends_on = [google_project_service.required]
}

# The functions read documents by path and query nothing, so no composite index is
# needed; single-field indexes are automatic.

# Receipts carry expireTime when RECEIPT_RETENTION_DAYS is set; TTL deletes them after it
# (typically within 24 hours), and the field is not indexed.
resource "google_firestore_field" "receipt_expiry" {
  count = var.receipt_retention_days > 0 ? 1 : 0

  database   = google_firestore_database.main.name
  collection = "receipts"
  field      = "expireTime"

  ttl_config {}

  index_config {}
}
