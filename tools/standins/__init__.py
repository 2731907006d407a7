"""Loopback stand-ins for the providers' APIs, for tests, the demo and the bench."""
