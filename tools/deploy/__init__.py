"""`make build` (bundle.py) and `make deploy` (gcloud.py)."""
