"""Webhooks: subscriptions per app and event type, deliveries fanned out from the outbox
by one dispatcher, signed, retried with backoff, dead-lettered, replayable."""
