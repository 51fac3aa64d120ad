"""A client interceptor that adds ``authorization: Bearer …`` to every call.

An interceptor rather than gRPC call credentials, because call credentials are refused on
plaintext channels (local development) while the trust boundary may still ask for a token.
"""

from __future__ import annotations

import collections
from typing import Callable

import grpc


class _Details(
    collections.namedtuple("_Details", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
    grpc.ClientCallDetails,
):
    pass


class BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Calls ``token()`` for every RPC (so a provider can rotate it) and sends the result."""

    def __init__(self, token: Callable[[], str]):
        self._token = token

    def _with_token(self, details):
        metadata = list(details.metadata or [])
        metadata.append(("authorization", f"Bearer {self._token()}"))
        return _Details(
            details.method, details.timeout, metadata, details.credentials,
            getattr(details, "wait_for_ready", None), getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._with_token(details), request_iterator)

    def __repr__(self):
        return "BearerToken([redacted])"
