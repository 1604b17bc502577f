"""The query APIs over the span store: Jaeger's (``jaeger``; v3 in OTLP JSON: ``jaeger_v3``) and
Zipkin's (``zipkin``), with their query parameters read in one place (``params``)."""
