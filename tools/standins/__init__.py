"""Loopback stand-ins of the providers' APIs, honouring their documented contracts."""
