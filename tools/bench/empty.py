"""The ceiling: an HTTP function that does nothing, served exactly like the webhook."""

from flask import Request


def empty(request: Request) -> str:
    return ""
