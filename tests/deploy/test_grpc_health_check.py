"""deploy/grpc_health_check.py (the dApp image's HEALTHCHECK and TLS exec probe) against a real
gRPC server running the standard health service, in plaintext and with mutual TLS."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from deploy_support import load_script
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

SERVER_NAME = "kdran-dapp.ran.svc"
SERVICE = "kdran.v1.ModelManager"


@dataclass(frozen=True)
class Pki:
    """PEM files: a CA, a server certificate for SERVER_NAME, a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


@dataclass
class HealthServer:
    """A running gRPC server with the health service; ``health`` sets statuses."""

    address: str
    health: health.HealthServicer


@pytest.fixture(scope="module")
def probe() -> ModuleType:
    return load_script("grpc_health_check")


def write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def issue(name: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name,
          issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool,
          san: list[x509.GeneralName] | None = None) -> x509.Certificate:
    """A one-day certificate for ``name`` signed by ``issuer_key``."""
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
               .issuer_name(issuer).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=1))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kdran test CA")])
    ca_cert = issue("kdran test CA", ca_key, ca_name, ca_key, ca=True)
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    server_cert = issue(SERVER_NAME, server_key, ca_name, ca_key, ca=False,
                        san=[x509.DNSName(SERVER_NAME)])
    client_cert = issue("kdran-xapp", client_key, ca_name, ca_key, ca=False,
                        san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])

    def pem(name: str, cert: x509.Certificate) -> Path:
        path = directory / name
        path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return path

    return Pki(ca=pem("ca.crt", ca_cert), server_cert=pem("server.crt", server_cert),
               server_key=write_key(directory / "server.key", server_key),
               client_cert=pem("client.crt", client_cert),
               client_key=write_key(directory / "client.key", client_key))


def start_server(credentials: grpc.ServerCredentials | None) -> tuple[grpc.Server, HealthServer]:
    servicer = health.HealthServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = (server.add_secure_port("127.0.0.1:0", credentials) if credentials
            else server.add_insecure_port("127.0.0.1:0"))
    server.start()
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    return server, HealthServer(f"127.0.0.1:{port}", servicer)


@pytest.fixture
def plain_server() -> Iterator[HealthServer]:
    server, running = start_server(None)
    yield running
    server.stop(None)


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[HealthServer]:
    credentials = grpc.ssl_server_credentials(
        [(pki.server_key.read_bytes(), pki.server_cert.read_bytes())],
        root_certificates=pki.ca.read_bytes(), require_client_auth=True)
    server, running = start_server(credentials)
    yield running
    server.stop(None)


def test_serving_server_passes(probe: ModuleType, plain_server: HealthServer) -> None:
    assert probe.main(["--address", plain_server.address]) == 0
    assert probe.main(["--address", plain_server.address, "--service", SERVICE]) == 0


def test_not_serving_fails(probe: ModuleType, plain_server: HealthServer,
                           capsys: pytest.CaptureFixture[str]) -> None:
    plain_server.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert probe.main(["--address", plain_server.address]) == 1
    assert "NOT_SERVING" in capsys.readouterr().err


def test_unknown_service_fails(probe: ModuleType, plain_server: HealthServer,
                               capsys: pytest.CaptureFixture[str]) -> None:
    assert probe.main(["--address", plain_server.address, "--service", "no.Such"]) == 1
    assert "failed" in capsys.readouterr().err


def test_no_server_fails_within_the_timeout(probe: ModuleType,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    server, stopped = start_server(None)
    server.stop(None)  # the port is now closed
    assert probe.main(["--address", stopped.address, "--timeout", "0.5"]) == 1
    assert "failed" in capsys.readouterr().err


def test_mutual_tls(probe: ModuleType, tls_server: HealthServer, pki: Pki) -> None:
    tls = ["--address", tls_server.address, "--tls-ca", str(pki.ca)]
    client = ["--tls-cert", str(pki.client_cert), "--tls-key", str(pki.client_key)]
    assert probe.main([*tls, *client, "--server-name", SERVER_NAME]) == 0
    # Refused: no client certificate, wrong expected name, plaintext against TLS.
    assert probe.main([*tls, "--server-name", SERVER_NAME, "--timeout", "1"]) == 1
    assert probe.main([*tls, *client, "--server-name", "other.svc", "--timeout", "1"]) == 1
    assert probe.main(["--address", tls_server.address, "--timeout", "1"]) == 1


def test_inconsistent_tls_options_are_refused(probe: ModuleType, pki: Pki,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert probe.main(["--tls-cert", str(pki.client_cert), "--tls-key",
                       str(pki.client_key)]) == 1
    assert "need --tls-ca" in capsys.readouterr().err
    assert probe.main(["--tls-ca", str(pki.ca), "--tls-cert", str(pki.client_cert)]) == 1
    assert "go together" in capsys.readouterr().err
