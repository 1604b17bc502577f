"""The log formatter every Canopy process uses: one line per event, JSON in production
(``LOG_FORMAT=json``) or plain text, carrying the request id bound for the request or task.

Tracebacks are plain: no local variables, ever. structlog's console renderer prints rich
tracebacks *with locals* when ``rich`` is installed, and its dict tracebacks include locals by
default; a password or a fresh token secret in a frame would end up in the log.
"""

from __future__ import annotations

import structlog

PRE_CHAIN = [
    structlog.contextvars.merge_contextvars,  # request_id, also on stdlib loggers' lines
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def log_formatter(format: str = "console") -> structlog.stdlib.ProcessorFormatter:
    if format == "json":
        renderers = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        renderers = [
            structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback
            )
        ]
    return structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers],
        foreign_pre_chain=PRE_CHAIN,
    )
