"""Compatibility checks against real peers (a real Prometheus, the real OpenTelemetry SDK)."""
