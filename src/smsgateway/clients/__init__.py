"""API clients: the marketplace backends that share the SMS account."""
