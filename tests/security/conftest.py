"""The tracing fixture of tests/tracing, shared with the security tests."""

from tests.tracing.conftest import traces  # noqa: F401
