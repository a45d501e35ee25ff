# syntax=docker/dockerfile:1
# EdgeScribe service image for Raspberry Pi 4/5 (linux/arm64) and x86-64 (linux/amd64):
#   docker build -t edgescribe .                                       # for this machine (on the Pi too)
#   docker buildx build --platform linux/arm64 --load -t edgescribe .  # for a Pi, from another machine
#   docker run -p 8000:8000 edgescribe
# Behind a mirror or a TLS-intercepting proxy: --build-arg PIP_INDEX_URL=https://mirror/simple
# [--build-arg PIP_EXTRA_INDEX_URL=...] [--build-arg EXTRA_CA_CERT="$(cat proxy-ca.pem)"].
# scripts/check_image.sh builds it for both architectures and checks it (arm64 as an emulated Cortex-A72).
# Build stage: a virtual environment with EdgeScribe's serving runtime (ONNX Runtime, NumPy, PyAV, FastAPI;
# no torch) and its default model, whose ONNX graph that runtime serves. --build-arg WITH_TORCH=1 adds
# CPU-only torch for the torch engine (models without a graph); the image then grows by about 0.7 GB.
# Then scripts/image_root.py makes the image's whole root file system from it: the interpreter, the
# standard library less its tests and tools, the shared libraries all of it loads, the environment less
# what serving never loads (pip, setuptools, test suites, headers, ONNX Runtime's C-API copy and model
# tools, uvicorn's unused extras), and the service user. The runtime stage is that folder alone, on
# scratch: no shell, no package manager, no compilers, no pip cache, no sources.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
# PyPI's aarch64 torch wheels are CUDA builds (GBs); the PyTorch CPU index has CPU-only wheels for
# both architectures. Pin it here so a rebuild gets the torch the tests ran with.
ARG WITH_TORCH=0
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
# pip reads these from the environment: a PyPI mirror and further indexes (space-separated).
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_EXTRA_INDEX_URL=
# A proxy's or mirror's CA certificate, as PEM text. It joins this stage's trust store, and pip is
# pointed at that store, since pip otherwise trusts only its own certifi bundle.
ARG EXTRA_CA_CERT=
RUN if [ -n "$EXTRA_CA_CERT" ]; then \
      printf '%s\n' "$EXTRA_CA_CERT" > /usr/local/share/ca-certificates/edgescribe-extra-ca.crt \
      && update-ca-certificates \
      && printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' > /etc/pip.conf; \
    fi
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/edgescribe \
    PATH=/opt/edgescribe/bin:$PATH
# A C compiler for the beam search's compiled frame loop (model/_ctcbeam.c; up to 2x faster decoding, README);
# Python's headers come with the python image (a Debian python3 base needs python3-dev for them). Only this
# stage has them: the runtime root holds the built module alone. Should apt fail, the install goes on
# without the module (it is optional) and the Python loop serves. Not pinned: any gcc of the base's Debian
# release builds it, and none of it reaches the image.
# hadolint ignore=DL3008
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends gcc libc6-dev \
 && if ! python -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then \
      apt-get install -y -qq --no-install-recommends python3-dev; \
    fi \
 && rm -rf /var/lib/apt/lists/* \
 || echo "no C compiler: the image's beam search runs in Python" >&2
RUN python -m venv "$VIRTUAL_ENV" \
 && if [ "$WITH_TORCH" = 1 ]; then pip install --no-cache-dir --index-url "$TORCH_INDEX" "torch==${TORCH_VERSION}"; fi
WORKDIR /src
COPY pyproject.toml setup.py README.md image-constraints.txt ./
COPY edgescribe ./edgescribe
COPY model ./model
COPY service ./service
COPY scripts/image_root.py ./scripts/image_root.py
# ONNX Runtime, NumPy, PyAV (FFmpeg inside) and the small pure-Python wheels, at the versions
# image-constraints.txt pins; then the embedded model must load. The bytecode stays: the runtime user
# cannot write it, and without it every start compiles everything again (twice the start-up time).
# unchecked-hash: valid whatever the files' times become in the copy to the runtime stage.
# The model-load check needs an Arm /proc/cpuinfo on arm64: an emulated build under qemu-user that passes
# the build host's x86 one through (Debian 12's qemu 7.2 does) would die in ONNX Runtime's cpuinfo
# (SIGSEGV at import, ONNX Runtime 1.28 and later), a fault of the emulation that a Pi does not share;
# there the check is skipped with a note (scripts/check_image.sh gives its emulated builds a Pi 4's).
RUN pip install --no-cache-dir -c image-constraints.txt . \
 && rm -rf "$VIRTUAL_ENV"/lib/python*/site-packages/torch/include \
 && python scripts/image_root.py slim --venv "$VIRTUAL_ENV" \
 && if [ "$(uname -m)" = aarch64 ] && ! grep -q '^CPU implementer' /proc/cpuinfo; then \
      echo "model-load check skipped: /proc/cpuinfo is not an Arm one (qemu-user passing the host's)" >&2; \
    else \
      python -I -c "from model.runtime import load_serving_model; print('engine:', load_serving_model(None).engine)"; \
      python -I -c "import model.ctc as c; print('beam search:', 'compiled' if c._native else 'Python')"; \
    fi \
 && python scripts/image_root.py root --venv "$VIRTUAL_ENV" --out /rootfs \
 && python -m compileall -q -f -j 0 --invalidation-mode unchecked-hash -s /rootfs -p / /rootfs/opt/edgescribe \
      "/rootfs$(python -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')"

FROM scratch AS runtime
COPY --from=build /rootfs /
ENV VIRTUAL_ENV=/opt/edgescribe \
    PATH=/opt/edgescribe/bin:/usr/local/bin:/usr/bin:/bin \
    LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    EDGESCRIBE_HOST=0.0.0.0 \
    EDGESCRIBE_PORT=8000
USER 10001
WORKDIR /tmp
EXPOSE 8000
EXPOSE 10300
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-m", "service.healthcheck"]
ENTRYPOINT ["edgescribe"]
CMD ["serve"]
