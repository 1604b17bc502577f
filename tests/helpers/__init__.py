"""Plain helpers shared by test modules (payload builders, credentials, strategies).

Fixtures live in ``conftest.py`` files; test modules import from here, never from each other.
"""
