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

# The webhook's spool (and what the drainer parks from it) in a database of its own: IAM
# conditions on Firestore select databases, not collections, so only a database of its own
# confines the public webhook's access to the spool.
resource "google_firestore_database" "spool" {
  name                              = "${var.name_prefix}-spool"
  location_id                       = var.firestore_location
  type                              = "FIRESTORE_NATIVE"
  concurrency_mode                  = "OPTIMISTIC"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED" # spooled events are acknowledged ones
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  deletion_policy                   = "ABANDON"

  depends_on = [google_project_service.required]
}

# No client (browser or app SDK) may read or write any database: the functions use IAM,
# which security rules do not govern, so the rules deny every request they do govern.
resource "google_firebaserules_ruleset" "deny_all" {
  source {
    files {
      name    = "firestore.rules"
      content = file("${path.module}/firestore.rules")
    }
  }

  lifecycle {
    create_before_destroy = true # a release always has a ruleset to point at
  }

  depends_on = [google_project_service.required]
}

resource "google_firebaserules_release" "deny_all" {
  for_each = local.firestore_databases

  # The (default) database reads the release cloud.firestore; a named one cloud.firestore/<id>.
  name         = each.value == "(default)" ? "cloud.firestore" : "cloud.firestore/${each.value}"
  ruleset_name = "projects/${var.project_id}/rulesets/${google_firebaserules_ruleset.deny_all.name}"
}

# The functions read documents by path and query nothing. `make report` reads a window of
# message documents across all conversations: a collection-group range query on firstTime,
# and on agent and firstTime with --agent. Collection-group queries need indexes declared.
resource "google_firestore_field" "message_first_time" {
  database   = google_firestore_database.main.name
  collection = "messages"
  field      = "firstTime"

  # Declaring a field's indexes replaces its automatic ones: keep those, and add the group's.
  index_config {
    indexes {
      order       = "ASCENDING"
      query_scope = "COLLECTION"
    }
    indexes {
      order       = "DESCENDING"
      query_scope = "COLLECTION"
    }
    indexes {
      order       = "ASCENDING"
      query_scope = "COLLECTION_GROUP"
    }
  }
}

resource "google_firestore_index" "messages_by_agent" {
  database    = google_firestore_database.main.name
  collection  = "messages"
  query_scope = "COLLECTION_GROUP"

  fields {
    field_path = "agent"
    order      = "ASCENDING"
  }
  fields {
    field_path = "firstTime"
    order      = "ASCENDING"
  }
}

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
