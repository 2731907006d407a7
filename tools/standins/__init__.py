"""Loopback stand-ins for the outside services the pipeline talks to."""
