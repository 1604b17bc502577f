"""The one write pipeline every signal uses.

A receiver commits a request as one outbox row (the durable hand-off, before it answers 2xx)
and asks for a drain; a Celery task keyed by (signal, org) moves the org's outbox into the
signal's time-partitioned table; beat sweeps up drains nobody ran and applies retention.

Signals (metrics, traces, …) plug in by registering a :class:`registry.SignalStore` from
their AppConfig's ``ready()``: this package never imports a signal's code.
"""
