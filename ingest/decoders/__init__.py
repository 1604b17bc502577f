"""Wire decoders: pure functions from request bytes to arrays and tuples.

Nothing here imports Django, the database or Celery (import-linter enforces it), so every decoder
can be fuzzed and benchmarked in isolation. Errors are :class:`errors.DecodeError` subclasses
carrying the HTTP status the API layer should answer with.
"""
