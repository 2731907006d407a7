"""The receipt pipeline's common code: each function's deployable source holds the modules
of it that the function imports (tools/deploy/bundle.py).

Its folders say what may do I/O (enforced by import-linter in `make lint`):

- `core/`: the pure core: the product's events, the data contract and every decision on
  them. No I/O, and it imports nothing from the other folders.
- `adapters/`: thin wrappers of Firestore, Pub/Sub, HTTP and logging around the core.
- `providers/`: one folder per messaging platform, entering through one registry
  (`shared.providers`); nothing outside that folder names a provider.
- `ops/`: operators' tools (report, replay, send records), never imported by a function.

Importing this package imports nothing: each function imports only the modules it needs,
so the webhook's cold start never pays for Firestore.
"""
