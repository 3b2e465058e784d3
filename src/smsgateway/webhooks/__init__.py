"""Signed webhooks to the marketplace, written to an outbox and retried until acknowledged."""
