"""gRPC TLS and mutual TLS with real certificates made in the test: trusted clients are served,
a client with an untrusted certificate (or none, under mTLS, or plaintext) is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from dapp_helpers import MakeArtifact, doppler_channels, start_dapp
from pki import Authority

from csi.presets import TINY
from dapp.client import ClientTls, DappClient
from dapp.server import DappServer
from dapp.tls import ServerTls

HISTORY = doppler_channels(1, TINY.history, seed=5)[0]
SERVICE_NAME = "kdran-dapp.ran.svc"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Authority]:
    """The deployment's CA and a stranger's CA."""
    root = tmp_path_factory.mktemp("pki")
    return {"ca": Authority.create(root, "kdran"), "rogue": Authority.create(root, "rogue")}


def _serve(tmp_path: Path, seed: Path, tls: ServerTls) -> DappServer:
    return start_dapp(tmp_path / "state", seed, tls=tls)


@pytest.fixture
def mtls_dapp(tmp_path: Path, make_artifact: MakeArtifact,
              pki: dict[str, Authority]) -> Iterator[DappServer]:
    """A dApp requiring client certificates from the deployment CA."""
    server_cert = pki["ca"].issue("dapp", server=True, dns=("localhost", SERVICE_NAME))
    server = _serve(tmp_path, make_artifact("linear", "lin-1"),
                    ServerTls(server_cert.cert, server_cert.key, pki["ca"].ca_path))
    yield server
    server.stop(grace_s=0.5)


def _served(port: int, tls: ClientTls | None) -> bool:
    """True if a client with ``tls`` gets a prediction; False if the handshake is refused."""
    with DappClient(f"127.0.0.1:{port}", timeout_s=3.0, tls=tls) as client:
        try:
            return client.predict(HISTORY).model_version == "lin-1"
        except grpc.RpcError as err:
            assert err.code() == grpc.StatusCode.UNAVAILABLE, err
            return False


def test_mutual_tls_serves_trusted_clients_only(mtls_dapp: DappServer,
                                                pki: dict[str, Authority]) -> None:
    ca, rogue = pki["ca"], pki["rogue"]
    good, bad = ca.issue("xapp", server=False), rogue.issue("intruder", server=False)
    port = mtls_dapp.port
    assert _served(port, ClientTls(ca.ca_path, good.cert, good.key))
    assert _served(port, ClientTls(ca.ca_path, good.cert, good.key, server_name=SERVICE_NAME))
    assert not _served(port, ClientTls(ca.ca_path, bad.cert, bad.key))     # untrusted cert
    assert not _served(port, ClientTls(ca.ca_path))                        # no client cert
    assert not _served(port, None)                                         # plaintext
    assert not _served(port, ClientTls(rogue.ca_path, good.cert, good.key))  # fake server CA
    assert _served(port, ClientTls(ca.ca_path, good.cert, good.key))       # still serving


def test_server_only_tls_and_name_check(tmp_path: Path, make_artifact: MakeArtifact,
                                        pki: dict[str, Authority]) -> None:
    ca = pki["ca"]
    cert = ca.issue("dapp-only-svc", server=True, dns=(SERVICE_NAME,), ips=())
    server = _serve(tmp_path, make_artifact("linear", "lin-1"), ServerTls(cert.cert, cert.key))
    try:
        assert _served(server.port, ClientTls(ca.ca_path, server_name=SERVICE_NAME))
        assert not _served(server.port, ClientTls(ca.ca_path))    # 127.0.0.1 not in the cert
        assert not _served(server.port, None)
    finally:
        server.stop(grace_s=0.5)


def test_bad_tls_files_are_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.crt").write_text("not a certificate")
    with pytest.raises(ValueError, match="not a PEM file"):
        ServerTls(tmp_path / "junk.crt", tmp_path / "junk.crt").credentials()
    with pytest.raises(ValueError, match="cannot read the CA certificate"):
        ClientTls(tmp_path / "missing.crt").credentials()
    with pytest.raises(ValueError, match="needs its key"):
        ClientTls(tmp_path / "junk.crt", cert=tmp_path / "junk.crt")
