"""Channel settings: TLS/mTLS, the retry policy, deadlines."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Optional

# Retried on UNAVAILABLE by gRPC itself (the standard service config). Not ProxyCall: its
# UNAVAILABLE can mean the connection to the upstream was lost after the request was sent,
# and a POST must not be sent twice. Not PutCredential: an authorization code is single-use.
RETRIED_METHODS = [
    {"service": "credbroker.v1.CredentialBroker", "method": "GetAuthorization"},
    {"service": "credbroker.v1.CredentialBroker", "method": "ReportRejected"},
    {"service": "credbroker.v1.CredentialAdmin", "method": "GetCredentialStatus"},
    {"service": "credbroker.v1.CredentialAdmin", "method": "ListCredentials"},
    {"service": "credbroker.v1.CredentialAdmin", "method": "DeleteCredential"},
]


def service_config(max_attempts: int = 4) -> str:
    """The gRPC service config: retry UNAVAILABLE with exponential back-off."""
    if max_attempts <= 1:
        return json.dumps({"methodConfig": []})
    policy = {
        "maxAttempts": max_attempts,
        "initialBackoff": "0.2s",
        "maxBackoff": "2s",
        "backoffMultiplier": 2,
        "retryableStatusCodes": ["UNAVAILABLE"],
    }
    return json.dumps({"methodConfig": [{"name": RETRIED_METHODS, "retryPolicy": policy}]})


@dataclass(frozen=True)
class TLS:
    """TLS to the broker; with ``cert_file`` and ``key_file``, mTLS (the client certificate
    identifies the caller). Paths to PEM files."""

    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    # The name to verify in the broker's certificate when it differs from the target host.
    server_name: Optional[str] = None

    def credentials(self):
        import grpc

        def read(path):
            if path is None:
                return None
            with open(path, "rb") as f:
                return f.read()

        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("mTLS needs both cert_file and key_file")
        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),
            private_key=read(self.key_file),
            certificate_chain=read(self.cert_file),
        )
