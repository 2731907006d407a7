"""Developer tooling: the local stack, the Business Messages stand-in, the demo.

Not part of any deployed function.
"""
