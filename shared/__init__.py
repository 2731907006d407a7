"""The receipt pipeline's common code, bundled into every function's deployable source.

Importing this package imports nothing: each function imports only the modules it needs,
so the webhook's cold start never pays for Firestore.
"""
