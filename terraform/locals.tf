locals {
  # One description of topics, functions and subscriptions, shared with `make deploy`
  # and the local stack.
  pipeline = jsondecode(file("${path.module}/pipeline.json"))

  provider_switches = {
    bm       = var.business_messages_enabled
    chatapp  = var.chatapp_enabled
    rbm      = var.rbm_enabled
    whatsapp = var.whatsapp_enabled
    # Chat App's queue mode has its own switch: it runs with or without the HTTP push.
    "chatapp-smq" = length(var.chatapp_smq_queues) > 0
  }
  enabled_providers = [for provider, on in local.provider_switches : provider if on]

  # The READ function's optional API settings: each set only when given, else the code's default.
  read_api_settings = {
    RBM_API_ENDPOINT      = var.rbm_api_endpoint
    WHATSAPP_API_ENDPOINT = var.whatsapp_api_endpoint
    WHATSAPP_API_VERSION  = var.whatsapp_api_version
  }

  # The providers whose events the webhook spools when Pub/Sub fails: listed and enabled.
  spooling_providers = sort(setintersection(var.spool_providers, local.enabled_providers))

  # A function whose pipeline.json entry lists `deployed_with` is deployed only when one of
  # those switches is on; the others always are.
  deployed = {
    for name, fn in local.pipeline.functions : name => fn
    if length(setintersection(lookup(fn, "deployed_with", ["always"]), concat(["always"], local.enabled_providers))) > 0
  }

  extra_env = {
    "webhook" = merge(
      {
        SPOOL_PROVIDERS = join(",", local.spooling_providers)
        SPOOL_DATABASE  = google_firestore_database.spool.name
      },
      length(var.chatapp_allowed_ips) > 0 ? { CHATAPP_ALLOWED_IPS = join(",", var.chatapp_allowed_ips) } : {},
    )
    "record-events" = var.receipt_retention_days > 0 ? {
      RECEIPT_RETENTION_DAYS = tostring(var.receipt_retention_days)
    } : {}
    "agent-read-receipts" = merge(
      { AUTO_READ_RECEIPTS = tostring(var.auto_read_receipts) },
      { for name, value in local.read_api_settings : name => value if value != "" },
    )
    "drain-spool" = {
      SPOOL_DATABASE     = google_firestore_database.spool.name
      SPOOL_MAX_ATTEMPTS = tostring(var.spool_max_attempts)
    }
    "pull-queues" = {
      CHATAPP_SMQ_QUEUES         = join(",", [for type, queue in var.chatapp_smq_queues : "${type}=${queue}"])
      CHATAPP_SMQ_ENDPOINT       = var.chatapp_smq_endpoint
      CHATAPP_SMQ_TOKEN_ENDPOINT = var.chatapp_smq_token_endpoint
    }
  }

  functions = {
    for name, fn in local.deployed : name => merge(fn, {
      max_instances = lookup(var.max_instances, name, fn.max_instances)
      min_instances = lookup(var.min_instances, name, 0)
      secrets = {
        for env, secret in fn.secrets : env => secret.secret
        if contains(local.enabled_providers, secret.provider)
      }
      env = merge(
        {
          GOOGLE_CLOUD_PROJECT = var.project_id
          THREADS              = tostring(fn.concurrency)
        },
        { for topic in fn.publishes_to : "${upper(topic)}_TOPIC" => "${var.name_prefix}-${topic}" },
        local.extra_env[name],
      )
    })
  }

  # The READ-receipt function runs as the account registered with Business Messages:
  # the one given, or the one created here (then register its email with the partner account).
  external_accounts = var.bm_api_service_account_email == "" ? {} : {
    "agent-read-receipts" = var.bm_api_service_account_email
  }
  function_accounts = merge(
    { for name, account in google_service_account.function : name => account.email },
    local.external_accounts,
  )

  secrets = toset(flatten([for fn in values(local.functions) : values(fn.secrets)]))

  secret_readers = merge([
    for name, fn in local.functions : {
      for secret in values(fn.secrets) : "${name}/${secret}" => { function = name, secret = secret }
    }
  ]...)

  # The databases by the names pipeline.json gives them.
  firestore_databases = {
    main  = google_firestore_database.main.name
    spool = google_firestore_database.spool.name
  }

  # One datastore.user grant per function and database it uses. The public webhook uses
  # Firestore only to spool: without a provider that spools, it has no Firestore access.
  firestore_users = merge([
    for name, fn in local.functions : {
      for database in fn.firestore_databases : "${name}/${database}" => { function = name, database = database }
    } if name != "webhook" || length(local.spooling_providers) > 0
  ]...)

  topic_publishers = merge([
    for name, fn in local.functions : {
      for topic in fn.publishes_to : "${name}/${topic}" => { function = name, topic = topic }
    }
  ]...)

  pubsub_service_agent    = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
  scheduler_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-cloudscheduler.iam.gserviceaccount.com"
}

data "google_project" "this" {
  project_id = var.project_id
}
