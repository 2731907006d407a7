variable "project_id" {
  description = "The Google Cloud project that runs the pipeline."
  type        = string
}

variable "region" {
  description = "Region of the functions, the source bucket and the topics' storage."
  type        = string
  default     = "europe-west1"
}

variable "firestore_location" {
  description = "Firestore location (a multi-region such as eur3 or nam5, or a region). Fixed once created."
  type        = string
  default     = "eur3"
}

variable "name_prefix" {
  description = "Prefix of every resource name; at most 16 characters so service account ids stay within 30."
  type        = string
  default     = "receipt-pipeline"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{2,15}$", var.name_prefix))
    error_message = "name_prefix must be 3-16 characters: lower-case letters, digits and hyphens, starting with a letter."
  }
}

variable "business_messages_enabled" {
  description = "Serve Google Business Messages on the webhook's root path (shut down by Google on 2024-07-31; RBM is its successor)."
  type        = bool
  default     = true
}

variable "rbm_enabled" {
  description = "Serve RCS Business Messaging on /rbm, and send its agent READ receipts."
  type        = bool
  default     = false
}

variable "rbm_api_endpoint" {
  description = "The RBM API's base URL; empty for https://rcsbusinessmessaging.googleapis.com (regional: https://europe-, us- or asia-rcsbusinessmessaging.googleapis.com)."
  type        = string
  default     = ""
}

variable "whatsapp_enabled" {
  description = "Serve the WhatsApp Business Platform (Cloud API) on /whatsapp, and send its agent READ receipts."
  type        = bool
  default     = false
}

variable "whatsapp_api_endpoint" {
  description = "The Graph API's base URL for WhatsApp's READ receipts; empty for https://graph.facebook.com."
  type        = string
  default     = ""
}

variable "whatsapp_api_version" {
  description = "The Graph API version (vNN.N) WhatsApp's READ receipts call; empty for the code's default."
  type        = string
  default     = ""
}

variable "chatapp_enabled" {
  description = "Serve Alibaba Cloud Chat App callbacks on /chatapp/{status|inbound|audit}/{token}."
  type        = bool
  default     = false
}

variable "chatapp_allowed_ips" {
  description = "Optional allow-list of addresses or networks Chat App pushes may come from; empty allows any."
  type        = list(string)
  default     = []
}

variable "chatapp_smq_queues" {
  description = "Chat App's SMQ queue mode: MessageType => queue name, as the Chat App console shows them, e.g. { ChatAppStatus = \"Alicom-Queue-123-ChatAppStatus\" }. Not empty: the queue puller, its Cloud Scheduler job and the AccessKey secrets are deployed. Works with or without chatapp_enabled (HTTP push)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for type in keys(var.chatapp_smq_queues) : contains(["ChatAppStatus", "ChatAppInbound", "ChatAppAudit"], type)])
    error_message = "chatapp_smq_queues keys are MessageTypes: ChatAppStatus, ChatAppInbound, ChatAppAudit."
  }
}

variable "chatapp_smq_endpoint" {
  description = "The SMQ (MNS) endpoint of the Chat App queues. International site: https://1493622401794734.mns.ap-southeast-1.aliyuncs.com."
  type        = string
  default     = "https://1943695596114318.mns.cn-hangzhou.aliyuncs.com"
}

variable "chatapp_smq_token_endpoint" {
  description = "The Dybaseapi endpoint that issues the queues' temporary tokens. International site: https://dybaseapi.ap-southeast-1.aliyuncs.com."
  type        = string
  default     = "https://dybaseapi.aliyuncs.com"
}

variable "spool_providers" {
  description = "Providers whose events the webhook keeps in a Firestore spool when Pub/Sub fails, instead of refusing them. Chat App re-pushes for ~6 minutes only; Business Messages retries for 7 days."
  type        = list(string)
  default     = ["chatapp"]

  validation {
    condition     = alltrue([for provider in var.spool_providers : contains(["bm", "chatapp", "rbm", "whatsapp"], provider)])
    error_message = "spool_providers may hold bm, chatapp, rbm and whatsapp."
  }
}

variable "spool_max_attempts" {
  description = "Failed publishes of its own after which the drainer sets a spooled event aside in the spool database's parked/ (an outage never counts)."
  type        = number
  default     = 5

  validation {
    condition     = var.spool_max_attempts >= 1
    error_message = "spool_max_attempts must be at least 1."
  }
}

variable "auto_read_receipts" {
  description = "Send the agent's READ receipt for every user message (RBM, Business Messages, WhatsApp)."
  type        = bool
  default     = true
}

variable "bm_api_service_account_email" {
  description = "An existing service account authorised by your RBM (or Business Messages) partner account, to run the READ-receipt function as. Empty: a new one is created (authorise its email in the partner account)."
  type        = string
  default     = ""
}

variable "receipt_retention_days" {
  description = "Delete receipt documents this many days after they are recorded (Firestore TTL); 0 keeps them."
  type        = number
  default     = 0

  validation {
    condition     = var.receipt_retention_days >= 0
    error_message = "receipt_retention_days cannot be negative."
  }
}

variable "max_delivery_attempts" {
  description = "Pub/Sub deliveries of one message before it is parked on the dead-letter topic (5-100)."
  type        = number
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100
    error_message = "max_delivery_attempts must be between 5 and 100."
  }
}

variable "max_instances" {
  description = "Per-function overrides of the maximum instance count (keys: webhook, record-events, agent-read-receipts)."
  type        = map(number)
  default     = {}
}

variable "min_instances" {
  description = "Per-function minimum instance count, for example { webhook = 1 } to avoid cold starts."
  type        = map(number)
  default     = {}
}

# --- Monitoring (monitoring.tf): where alerts go, and when they fire -------------------

variable "alert_emails" {
  description = "E-mail addresses that receive every alert (one notification channel each); empty for none."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for email in var.alert_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", email))])
    error_message = "alert_emails must be e-mail addresses."
  }
}

variable "alert_notification_channels" {
  description = "Existing notification channels (projects/PROJECT/notificationChannels/ID: Slack, PagerDuty, SMS, ...) that also receive every alert."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for channel in var.alert_notification_channels : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", channel))])
    error_message = "alert_notification_channels must be channel names: projects/PROJECT/notificationChannels/ID."
  }
}

variable "alert_dead_letters" {
  description = "Alert when more than this many messages wait on the dead-letter subscription."
  type        = number
  default     = 0

  validation {
    condition     = var.alert_dead_letters >= 0
    error_message = "alert_dead_letters cannot be negative."
  }
}

variable "alert_oldest_unacked_seconds" {
  description = "Alert when the oldest unacknowledged message of a push subscription is older than this (seconds). A message failing every delivery reaches the dead-letter topic after about 40 minutes of backoff."
  type        = number
  default     = 900

  validation {
    condition     = var.alert_oldest_unacked_seconds >= 60
    error_message = "alert_oldest_unacked_seconds must be at least 60."
  }
}

variable "alert_webhook_auth_failures" {
  description = "Alert when the webhook answers more than this many 401 and 403 in 5 minutes (Cloud Run's own count, not the rate-limited log lines)."
  type        = number
  default     = 50

  validation {
    condition     = var.alert_webhook_auth_failures >= 0
    error_message = "alert_webhook_auth_failures cannot be negative."
  }
}

variable "alert_webhook_5xx" {
  description = "Alert when the webhook answers more than this many 5xx in 5 minutes: each is an event a provider must push again (Chat App only twice)."
  type        = number
  default     = 0

  validation {
    condition     = var.alert_webhook_5xx >= 0
    error_message = "alert_webhook_5xx cannot be negative."
  }
}

variable "alert_spool_minutes" {
  description = "Alert when every drain run for this many minutes ended with events left in the spool."
  type        = number
  default     = 5

  validation {
    condition     = var.alert_spool_minutes >= 1 && floor(var.alert_spool_minutes) == var.alert_spool_minutes
    error_message = "alert_spool_minutes must be a whole number of minutes, at least 1."
  }
}

variable "alert_drainer_silent_minutes" {
  description = "Alert when the spool's drainer (scheduled every minute) has reported no run for this many minutes."
  type        = number
  default     = 10

  validation {
    condition     = var.alert_drainer_silent_minutes >= 2 && floor(var.alert_drainer_silent_minutes) == var.alert_drainer_silent_minutes
    error_message = "alert_drainer_silent_minutes must be a whole number of minutes, at least 2."
  }
}

variable "alert_read_receipt_failures" {
  description = "Alert when more than this many agent READ receipts end FAILED (a permanent API error) in 5 minutes."
  type        = number
  default     = 0

  validation {
    condition     = var.alert_read_receipt_failures >= 0
    error_message = "alert_read_receipt_failures cannot be negative."
  }
}

variable "receipt_statuses" {
  description = "Per provider, the receipt statuses the recorder records: each gets a log-based metric, charted per minute on the dashboard (only enabled providers')."
  type        = map(list(string))
  default = {
    bm       = ["DELIVERED", "READ"]
    chatapp  = ["Sent", "Delivered", "Read", "Failed", "Deleted", "subscribe", "unsubscribe"]
    rbm      = ["DELIVERED", "READ", "TTL_EXPIRATION_REVOKED", "TTL_EXPIRATION_REVOKE_FAILED"]
    whatsapp = ["sent", "delivered", "read", "failed", "played"]
  }

  validation {
    # Each is a log field name and part of a metric name.
    condition     = alltrue([for statuses in values(var.receipt_statuses) : alltrue([for status in statuses : can(regex("^[A-Za-z][A-Za-z0-9_]*$", status))])])
    error_message = "receipt_statuses may hold letters, digits and underscores only."
  }
}

# --- The change stream's consumers (changes.tf), off by default ---------------------------

variable "changes_push_endpoint" {
  description = "The business's HTTPS endpoint to push every change-stream event to, with an OIDC token of a service account created for this alone (docs/change-stream-consumers.md); empty for none."
  type        = string
  default     = ""

  validation {
    condition     = var.changes_push_endpoint == "" || can(regex("^https://[^/\\s]+", var.changes_push_endpoint))
    error_message = "changes_push_endpoint must be an https:// URL (or empty)."
  }
}

variable "changes_push_audience" {
  description = "The audience of the pushes' OIDC tokens, which the endpoint checks; empty for changes_push_endpoint itself."
  type        = string
  default     = ""
}

variable "analytics_dataset" {
  description = "A BigQuery dataset to create (in region) with every change-stream event in its table `changes`, written by a Pub/Sub BigQuery subscription, and the receipt metrics' views (terraform/analytics/); empty for none."
  type        = string
  default     = ""

  validation {
    condition     = var.analytics_dataset == "" || (can(regex("^[A-Za-z0-9_]+$", var.analytics_dataset)) && length(var.analytics_dataset) <= 1024)
    error_message = "analytics_dataset must be a BigQuery dataset id: letters, digits and underscores (or empty)."
  }
}
