"""TLS/mTLS and the bearer token, against the real broker with ``[server.tls]``.

``clients/testdata/tls/broker.toml``: client certificates from the test CA required, the test
client's SPIFFE ID (``spiffe://credbroker.test/client``) may read and write ``bro``
credentials under ``client-suite/``, bearer tokens are verified against a JWKS: grpc's own
TLS stack (a client nobody here wrote) against rustls.
"""

from __future__ import annotations

import os
import pathlib

import grpc
import pytest

from credbroker.v1 import broker_pb2, broker_pb2_grpc
from conftest import _binary, _Process
from credbroker_client import TLS, Credbroker, CredbrokerError

CERTS = pathlib.Path(__file__).resolve().parents[2] / "testdata" / "tls"
MTLS = TLS(ca_file=str(CERTS / "ca.pem"), cert_file=str(CERTS / "client.pem"), key_file=str(CERTS / "client.key"))
CODE = "7e" * 32  # a BRO token code (64 hex characters)


@pytest.fixture(scope="module")
def mtls_target():
    # Run from the certificates' directory: broker.toml names its files relative to it.
    command = [_binary("CREDBROKER_BIN", "credbroker"), "serve", "--config", "broker.toml"]
    process = _Process(command, env=dict(os.environ), cwd=CERTS)
    target = process.wait_for(r'(?=.*credbroker listening).*"addr":"([0-9.:]+)"').group(1)
    with grpc.secure_channel(target, MTLS.credentials()) as channel:
        request = broker_pb2.PutCredentialRequest(
            provider="bro", subject="client-suite/a", bro_token=broker_pb2.BroToken(username="u|1", code=CODE)
        )
        broker_pb2_grpc.CredentialAdminStub(channel).PutCredential(request, timeout=30)
    yield target, process
    process.stop()


def test_mtls_caller_allowed_by_policy_gets_the_header(mtls_target):
    target, process = mtls_target
    with Credbroker(target, tls=MTLS, timeout=30) as broker:
        auth = broker.authorization("bro", "client-suite/a")
    assert auth.as_dict()["authorization"].startswith("Basic ")
    assert CODE not in "".join(process.lines), "no secret in the broker's log"


def test_a_subject_outside_the_policy_is_permission_denied(mtls_target):
    target, _ = mtls_target
    with Credbroker(target, tls=MTLS, timeout=30, max_attempts=1) as broker:
        with pytest.raises(CredbrokerError) as denied:
            broker.authorization("bro", "other/a")
    assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED


def test_a_bearer_token_that_does_not_verify_is_unauthenticated_and_not_echoed(mtls_target):
    target, _ = mtls_target
    with Credbroker(target, tls=MTLS, bearer_token=lambda: "tok-1-not-a-jwt", timeout=30, max_attempts=1) as broker:
        with pytest.raises(CredbrokerError) as refused:
            broker.authorization("bro", "client-suite/a")
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert "bearer token" in str(refused.value) and "tok-1" not in str(refused.value)


@pytest.mark.parametrize(
    "tls",
    [
        TLS(ca_file=str(CERTS / "ca.pem")),  # no client certificate
        TLS(ca_file=str(CERTS / "client.pem"), cert_file=str(CERTS / "client.pem"), key_file=str(CERTS / "client.key")),
    ],
    ids=["no-client-certificate", "untrusted-ca"],
)
def test_refused_without_the_right_certificates(mtls_target, tls):
    target, _ = mtls_target
    with Credbroker(target, tls=tls, timeout=10, max_attempts=1) as broker:
        with pytest.raises(CredbrokerError) as refused:
            broker.authorization("bro", "client-suite/a")
    assert refused.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
