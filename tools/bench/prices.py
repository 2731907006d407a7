"""Published Google Cloud list prices (USD) the cost model multiplies the counted operations by.

Read on 2026-11-21 from stored copies of Google's pricing pages (the pages carry no date of
their own); check them before relying on the dollars:
- Firestore (Standard edition), cloud.google.com/firestore/pricing: multi-region (nam5, eur3)
  $0.06 per 100,000 document reads, $0.18 per 100,000 writes. Regional locations cost half.
- Pub/Sub, cloud.google.com/pubsub/pricing: message delivery $40 per TiB for publish and
  for each delivery (push), at least 1,000 bytes per publish or push request. Checked again
  on 2026-12-07 for the change stream (tools/bench/stream.py), same page: "$40 per TiB";
  a message's data volume is its body, each attribute's key and value, 20 bytes for the
  timestamp and the message_id; "a minimum of 1000 bytes per publish, push or pull request
  is assessed regardless of message size".
- Cloud Run functions (gen2, Cloud Run request-based billing, tier 1 regions),
  cloud.google.com/run/pricing: $0.40 per million requests, $0.000024 per vCPU-second,
  $0.0000025 per GiB-second, billed in 100 ms steps. Free tiers are left out: they do not
  scale with traffic.
"""

from __future__ import annotations

READ_PRICES_ON = "2026-11-21"
FIRESTORE_READ = 0.06 / 100_000
FIRESTORE_WRITE = 0.18 / 100_000
PUBSUB_PER_BYTE = 40 / 2**40
PUBSUB_MINIMUM_BYTES = 1000  # per publish or push request
INVOCATION = 0.40 / 1_000_000
VCPU_SECOND = 0.000024
GIB_SECOND = 0.0000025
MINIMUM_BILLED_SECONDS = 0.1  # Cloud Run rounds an instance's busy time up to 100 ms
