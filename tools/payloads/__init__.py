"""Provider webhook requests as the providers send them, for tests, the demo and the bench."""
