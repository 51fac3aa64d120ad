"""TLS/mTLS and the bearer token, against a stand-in TLS server (grpc's own, in-process).

credbroker's server-side TLS is built separately (``[server.tls]``); until it is merged, this
checks the client's side: it trusts only the given CA, presents its certificate, and sends the
bearer token. The stand-in answers GetAuthorization with the ``authorization`` metadata it saw.
"""

from __future__ import annotations

import pathlib
from concurrent import futures

import grpc
import pytest

from credbroker.v1 import broker_pb2, broker_pb2_grpc
from credbroker_client import TLS, Credbroker, CredbrokerError

CERTS = pathlib.Path(__file__).resolve().parents[2] / "testdata" / "tls"


class Echo(broker_pb2_grpc.CredentialBrokerServicer):
    def GetAuthorization(self, request, context):
        seen = dict(context.invocation_metadata()).get("authorization", "")
        return broker_pb2.GetAuthorizationResponse(
            headers=[broker_pb2.Header(name="seen-authorization", value=seen)], token_fingerprint="f"
        )


@pytest.fixture(scope="module")
def mtls_target():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    broker_pb2_grpc.add_CredentialBrokerServicer_to_server(Echo(), server)
    credentials = grpc.ssl_server_credentials(
        [((CERTS / "server.key").read_bytes(), (CERTS / "server.pem").read_bytes())],
        root_certificates=(CERTS / "ca.pem").read_bytes(),
        require_client_auth=True,
    )
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def test_mtls_with_a_bearer_token(mtls_target):
    tls = TLS(ca_file=str(CERTS / "ca.pem"), cert_file=str(CERTS / "client.pem"), key_file=str(CERTS / "client.key"))
    with Credbroker(mtls_target, tls=tls, bearer_token=lambda: "tok-1", timeout=30) as broker:
        auth = broker.authorization("p", "s")
    assert auth.as_dict() == {"seen-authorization": "Bearer tok-1"}


@pytest.mark.parametrize(
    "tls",
    [
        TLS(ca_file=str(CERTS / "ca.pem")),  # no client certificate
        TLS(ca_file=str(CERTS / "client.pem"), cert_file=str(CERTS / "client.pem"), key_file=str(CERTS / "client.key")),
    ],
    ids=["no-client-certificate", "untrusted-ca"],
)
def test_refused_without_the_right_certificates(mtls_target, tls):
    with Credbroker(mtls_target, tls=tls, timeout=10, max_attempts=1) as broker:
        with pytest.raises(CredbrokerError) as refused:
            broker.authorization("p", "s")
    assert refused.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
