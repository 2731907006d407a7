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
    condition     = alltrue([for provider in var.spool_providers : contains(["bm", "chatapp", "rbm"], provider)])
    error_message = "spool_providers may hold bm, chatapp and rbm."
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
  description = "Send the agent's READ receipt for every user message (RBM, Business Messages)."
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
