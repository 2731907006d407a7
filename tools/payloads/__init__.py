"""Realistic provider requests (signed, shaped as each platform sends them) for tests,
the demo and the bench."""
