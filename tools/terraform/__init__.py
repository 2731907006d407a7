"""Offline `terraform validate` and `terraform plan` of terraform/, on the real provider schemas.

No google or archive provider binary can be installed here, but their CDK bindings on PyPI carry
each provider's schema (a jsii assembly). A stub provider serves that schema over Terraform's
plugin protocol (tfplugin6), handed to Terraform with TF_REATTACH_PROVIDERS, so the real
Terraform checks every argument, type, required argument and block, and builds the whole plan.

    python -m tools.terraform fmt | validate | plan [--vars FILE] [--var k=v ...]
"""
