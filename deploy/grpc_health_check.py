"""Probe a gRPC server's standard health service (grpc.health.v1.Health/Check).

The dApp image's Docker HEALTHCHECK runs this, and so does the dApp chart's exec probe when gRPC
TLS is on (Kubernetes' native ``grpc:`` probes speak plaintext only). Exit status 0 means the
server answered SERVING for ``--service`` within ``--timeout`` seconds; anything else prints the
reason to stderr and exits 1. Standalone on purpose: it imports only grpcio and
grpcio-health-checking, which the dApp image has, and nothing from kdran.

    python grpc_health_check.py --address 127.0.0.1:50051
    python grpc_health_check.py --address 127.0.0.1:50051 --tls-ca /etc/kdran/tls/ca.crt \\
        --tls-cert /etc/kdran/tls/tls.crt --tls-key /etc/kdran/tls/tls.key \\
        --server-name kdran-dapp.ran.svc
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def build_parser() -> argparse.ArgumentParser:
    """Command-line options of the probe."""
    parser = argparse.ArgumentParser(
        description="Exit 0 when a gRPC server reports SERVING on the standard health service.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--address", default="127.0.0.1:50051",
                        help="gRPC target: host:port or unix:///path")
    parser.add_argument("--service", default="",
                        help="service name to check; empty asks about the server as a whole")
    parser.add_argument("--timeout", type=float, default=2.0, help="deadline of the call (s)")
    parser.add_argument("--tls-ca", type=Path, default=None,
                        help="CA bundle (PEM) that signed the server certificate; enables TLS")
    parser.add_argument("--tls-cert", type=Path, default=None,
                        help="client certificate (PEM) for mutual TLS")
    parser.add_argument("--tls-key", type=Path, default=None,
                        help="client private key (PEM) for mutual TLS")
    parser.add_argument("--server-name", default="",
                        help="name the server certificate must carry when it differs from the "
                             "address host (e.g. probing 127.0.0.1)")
    return parser


def open_channel(args: argparse.Namespace) -> grpc.Channel:
    """A plaintext channel, or a TLS one when ``--tls-ca`` is given."""
    if args.tls_ca is None:
        if args.tls_cert is not None or args.tls_key is not None:
            raise ValueError("--tls-cert/--tls-key need --tls-ca")
        return grpc.insecure_channel(args.address)
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=args.tls_ca.read_bytes(),
        private_key=args.tls_key.read_bytes() if args.tls_key else None,
        certificate_chain=args.tls_cert.read_bytes() if args.tls_cert else None)
    options = ([("grpc.ssl_target_name_override", args.server_name)]
               if args.server_name else [])
    return grpc.secure_channel(args.address, credentials, options=options)


def check(args: argparse.Namespace) -> str:
    """The serving status name the server reports for ``args.service``."""
    with open_channel(args) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the probe; 0 when SERVING, else 1 with the reason on stderr."""
    args = build_parser().parse_args(argv)
    try:
        status = check(args)
    except (grpc.RpcError, OSError, ValueError) as error:
        detail = error.details() if isinstance(error, grpc.Call) else str(error)
        print(f"health check of {args.address} failed: {detail}", file=sys.stderr)
        return 1
    if status != "SERVING":
        print(f"{args.address} reports {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
