"""What every OTLP/gRPC handler shares: the caller's org from the ``authorization`` metadata,
and a refusal as a gRPC status. (No Django at import time: the server sets Django up after
importing its handlers.)"""

from __future__ import annotations

import grpc

from ingest.accept.refusals import Refusal, Refused

# A refusal's gRPC status; OTLP/gRPC senders retry UNAVAILABLE and RESOURCE_EXHAUSTED.
GRPC_STATUS = {
    Refusal.PAYLOAD_TOO_LARGE: grpc.StatusCode.INVALID_ARGUMENT,
    Refusal.UNSUPPORTED_MEDIA_TYPE: grpc.StatusCode.INVALID_ARGUMENT,
    Refusal.INVALID: grpc.StatusCode.INVALID_ARGUMENT,
    Refusal.RATE_LIMITED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Refusal.STORAGE_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
}


def authorized_org(context: grpc.ServicerContext, scope) -> int:
    """The org id of the call's token, which must hold ``scope``; aborts the call otherwise."""
    from django.db import DatabaseError

    from backend.tenancy.access import AccessError, access_from_grpc_metadata

    try:
        access = access_from_grpc_metadata(context.invocation_metadata())
    except AccessError as exc:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, exc.message)
    except DatabaseError as exc:
        # the token look-up needs the database: while it is down (a restart), a retryable
        # UNAVAILABLE as for the write itself, not an unhandled exception (UNKNOWN)
        context.abort(grpc.StatusCode.UNAVAILABLE, f"storage unavailable: {type(exc).__name__}")
    if access is None:
        context.abort(
            grpc.StatusCode.UNAUTHENTICATED,
            "send a Canopy API token in the authorization metadata: 'Bearer <token>'",
        )
    if not access.allows(scope):
        context.abort(grpc.StatusCode.PERMISSION_DENIED, f"this token lacks {scope.value}")
    return access.org_id


def refused_abort(refused: Refused, context: grpc.ServicerContext) -> None:
    """Ends the call with the refusal's status (``context.abort`` raises)."""
    status = GRPC_STATUS[refused.refusal]
    if status is grpc.StatusCode.RESOURCE_EXHAUSTED:
        context.set_trailing_metadata((("retry-after", str(refused.retry_after)),))
    message = refused.message
    if status is grpc.StatusCode.UNAVAILABLE:
        message = f"storage unavailable: {refused.cause}"
    context.abort(status, message)
