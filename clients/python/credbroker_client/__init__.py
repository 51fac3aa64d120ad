"""credbroker's Python client: cached authorization headers, 401 handling, ProxyCall.

    from credbroker_client import Credbroker
    with Credbroker("127.0.0.1:50051") as broker:
        headers = broker.authorization("pass", "jan").as_dict()
"""

from .client import Authorization, Credbroker, ProxyResponse, utc
from .config import TLS, service_config
from .errors import (
    CredbrokerError,
    DeadlineExceededError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ReauthRequiredError,
    UnavailableError,
)
from .http import CredbrokerAuth, CredbrokerHttpxAuth

__all__ = [
    "Authorization", "Credbroker", "ProxyResponse", "utc", "TLS", "service_config",
    "CredbrokerError", "DeadlineExceededError", "InvalidArgumentError", "NotFoundError",
    "PermissionDeniedError", "ReauthRequiredError", "UnavailableError",
    "CredbrokerAuth", "CredbrokerHttpxAuth",
]
