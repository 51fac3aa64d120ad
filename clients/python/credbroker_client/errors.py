"""gRPC statuses from the broker as Python exceptions.

Each carries the broker's status ``code`` (a ``grpc.StatusCode``) and its ``message``
unchanged. The broker's messages never contain a secret, and these exceptions never include
the request (which may hold one).
"""

from __future__ import annotations

import grpc


class CredbrokerError(Exception):
    """The broker (or the connection to it) answered with a non-OK status."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class NotFoundError(CredbrokerError):
    """Unknown provider instance, or no credential stored for the subject."""


class InvalidArgumentError(CredbrokerError):
    """The request was refused: the message names the field."""


class ReauthRequiredError(CredbrokerError):
    """FAILED_PRECONDITION: the credential needs re-authorization by an operator."""


class UnavailableError(CredbrokerError):
    """UNAVAILABLE after the client's retries: retry later."""


class DeadlineExceededError(CredbrokerError):
    """The call's deadline passed."""


class PermissionDeniedError(CredbrokerError):
    """UNAUTHENTICATED or PERMISSION_DENIED: this caller may not do that."""


_BY_CODE = {
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.FAILED_PRECONDITION: ReauthRequiredError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAUTHENTICATED: PermissionDeniedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
}


def from_rpc_error(error: grpc.RpcError) -> CredbrokerError:
    """The exception for a failed call, keeping the broker's code and message."""
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else ""
    return _BY_CODE.get(code, CredbrokerError)(code, message or "")
