"""Thin adapters around the core: Firestore, Pub/Sub, HTTP, logging."""
