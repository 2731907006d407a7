"""Developer tooling, never deployed: the local stack and demo (`local/`), the providers'
API stand-ins (`standins/`) and payload builders (`payloads/`), `bench/`, and `deploy/`."""
