"""gRPC TLS and mutual TLS of the dApp, with certificates and keys from PEM files.

``ServerTls``: the server's certificate chain and key; with ``client_ca`` the server requires
every client to present a certificate signed by that CA (mutual TLS) and the handshake fails for
a client without one or with another CA's. ``ClientTls``: the CA the client trusts for the
server (None = the system roots), the client's own certificate and key for mutual TLS, and an
optional name to check in the server's certificate instead of the target's host (e.g. connecting
to 127.0.0.1 with a certificate for ``kdran-dapp.ns.svc``). The same files are what the Helm
chart mounts from a Secret (``tls.crt``, ``tls.key``, ``ca.crt``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from kdran.pem import read_pem


def _read(path: Path | None, what: str) -> bytes | None:
    return None if path is None else read_pem(path, what)


@dataclass(frozen=True)
class ServerTls:
    """Server side: PEM certificate chain, PEM key, and the clients' CA (None = no mTLS)."""

    cert: Path
    key: Path
    client_ca: Path | None = None

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials; ``ValueError`` naming a missing or non-PEM file."""
        chain = _read(self.cert, "server certificate")
        key = _read(self.key, "server key")
        assert chain is not None and key is not None
        return grpc.ssl_server_credentials(
            [(key, chain)], root_certificates=_read(self.client_ca, "client CA"),
            require_client_auth=self.client_ca is not None)


@dataclass(frozen=True)
class ClientTls:
    """Client side: trusted CA (None = system roots), own certificate + key for mutual TLS
    (both or neither), and the name expected in the server certificate ("" = target host)."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str = ""

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("a client certificate needs its key and vice versa")

    def credentials(self) -> grpc.ChannelCredentials:
        """Channel credentials; ``ValueError`` naming a missing or non-PEM file."""
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca, "CA certificate"),
            private_key=_read(self.key, "client key"),
            certificate_chain=_read(self.cert, "client certificate"))

    def options(self) -> list[tuple[str, str]]:
        """Channel options (the server-name override, when set)."""
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []
