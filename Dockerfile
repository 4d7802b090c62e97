# kdran images, one build target per component (docs/DEPLOY.md):
#   docker build --target xapp    -t 127.0.0.1:5000/kdran-xapp:0.1.0 .
#   docker build --target dapp    -t 127.0.0.1:5000/kdran-dapp:0.1.0 .
#   docker build --target distill -t 127.0.0.1:5000/kdran-distill:0.1.0 .
# The distill target installs torch 2.13.0 for CPU; for GPU nodes build it with
#   --build-arg TORCH_VARIANT=cu128
# (PyTorch's CUDA wheels carry the CUDA runtime; the node needs only the driver and device plugin).
# Every target runs as uid 10001, needs no writable root filesystem (mount /tmp and
# /var/lib/kdran) and pins its base image, Python packages (deploy/constraints.txt) and RMR.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---------------------------------------------------------------- shared runtime base
FROM ${PYTHON_IMAGE} AS runtime-base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/kdran/venv \
    PATH=/opt/kdran/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/var/lib/kdran \
    TMPDIR=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib
RUN groupadd --system --gid 10001 kdran \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/kdran --no-create-home \
       --shell /usr/sbin/nologin kdran \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/kdran /var/lib/kdran/artifacts \
       /var/lib/kdran/state

# ---------------------------------------------------------------- source tree + pinned pip
FROM runtime-base AS source
ARG PIP_VERSION=25.1.1
WORKDIR /src
RUN python -m venv /opt/kdran/venv && pip install "pip==${PIP_VERSION}"
COPY pyproject.toml README.md ./
COPY deploy/constraints.txt ./deploy/constraints.txt
COPY kdran ./kdran
COPY csi ./csi
COPY dapp ./dapp
COPY xapp ./xapp
COPY distill ./distill
COPY sim ./sim

# ---------------------------------------------------------------- virtual environments
FROM source AS build-dapp
RUN pip install -c deploy/constraints.txt '.[dapp]'

FROM source AS build-xapp
RUN pip install -c deploy/constraints.txt '.[xapp]' \
    && pip install --no-deps -c deploy/constraints.txt ricxappframe==3.2.2 ricsdl==3.1.3

FROM source AS build-distill
ARG TORCH_VARIANT=cpu
RUN pip install -c deploy/constraints.txt --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" \
       --extra-index-url https://pypi.org/simple torch==2.13.0 \
    && pip install -c deploy/constraints.txt '.[distill]'

# ---------------------------------------------------------------- RMR from its released package
FROM runtime-base AS rmr
ARG RMR_VERSION=4.9.4
ADD https://packagecloud.io/o-ran-sc/release/packages/debian/stretch/rmr_${RMR_VERSION}_amd64.deb/download.deb /tmp/rmr.deb
RUN dpkg-deb --extract /tmp/rmr.deb /rmr-root \
    && test -e /rmr-root/usr/local/lib/librmr_si.so

# ================================================================ target: xapp
FROM runtime-base AS xapp
COPY --from=rmr /rmr-root/usr/local/lib/ /usr/local/lib/
COPY --from=build-xapp /opt/kdran/venv /opt/kdran/venv
COPY deploy/rmr/seed.rt /opt/ric/route/seed.rt
COPY config-file.json schema.json /opt/ric/config/
ENV PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python \
    CONFIG_FILE=/opt/ric/config/config-file.json \
    RMR_SEED_RT=/opt/ric/route/seed.rt
RUN ldconfig && python -c "import ctypes; ctypes.CDLL('librmr_si.so')"
WORKDIR /var/lib/kdran
VOLUME ["/tmp", "/var/lib/kdran"]
EXPOSE 4560 4561 8080
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as r; sys.exit(0 if r.urlopen('http://127.0.0.1:8080/ric/v1/health/alive', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["kdran", "xapp", "run"]
CMD ["--mode", "ric", "--config", "/opt/ric/config/config-file.json"]

# ================================================================ target: dapp
FROM runtime-base AS dapp
COPY --from=build-dapp /opt/kdran/venv /opt/kdran/venv
COPY deploy/grpc_health_check.py /opt/kdran/bin/grpc_health_check.py
WORKDIR /var/lib/kdran
VOLUME ["/tmp", "/var/lib/kdran"]
EXPOSE 50051 9100
USER 10001:10001
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "/opt/kdran/bin/grpc_health_check.py", "--address", "127.0.0.1:50051"]
ENTRYPOINT ["kdran", "dapp", "serve"]
# No --model: the dApp answers with its AR/Wiener fallback until the xApp deploys a model.
CMD ["--listen", "0.0.0.0:50051", "--metrics-port", "9100", "--state-dir", "/var/lib/kdran/state", \
     "--preset", "std"]

# ================================================================ target: distill (the re-distillation Job)
FROM runtime-base AS distill
COPY --from=build-distill /opt/kdran/venv /opt/kdran/venv
WORKDIR /var/lib/kdran
VOLUME ["/tmp", "/var/lib/kdran"]
USER 10001:10001
HEALTHCHECK --interval=60s --timeout=30s --start-period=10s --retries=1 \
    CMD ["python", "-c", "import torch, distill"]
ENTRYPOINT ["kdran", "job", "run"]
CMD ["--spec", "/var/lib/kdran/artifacts/job.json"]
