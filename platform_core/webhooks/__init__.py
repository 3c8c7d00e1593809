"""Webhooks: subscriptions per app and event type, deliveries fanned out from the outbox
by one dispatcher, signed, retried with backoff, dead-lettered, replayable.

``models`` (tables) · ``events`` (event types, body, the outbox fan-out handler,
``register_builtins``) · ``signing`` (secrets, HMAC signatures) · ``ssrf`` (where a webhook
may go) · ``sender`` (``deliver_due``) · ``service`` (subscriptions, the delivery log,
replay) · ``api`` (routes) · ``background`` (the loop run with the app). docs/webhooks.md
is the integrator's guide.
"""
