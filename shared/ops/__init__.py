"""Operators' tools: `make report`, `make replay`, the business's send records."""
