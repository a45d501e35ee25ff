# syntax=docker/dockerfile:1
# EdgeScribe service image for Raspberry Pi 4/5 (linux/arm64) and x86-64 (linux/amd64):
#   docker buildx build --platform linux/arm64,linux/amd64 -t edgescribe .
#   docker run -p 8000:8000 edgescribe
# Build stage: a virtual environment with EdgeScribe's serving runtime (ONNX Runtime, NumPy, PyAV, FastAPI;
# no torch) and its default model, whose ONNX graph that runtime serves. --build-arg WITH_TORCH=1 adds
# CPU-only torch for the torch engine (models without a graph); the image then grows by about 0.7 GB.
# The runtime stage copies only that environment: no compilers, no pip cache, no sources.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
# PyPI's aarch64 torch wheels are CUDA builds (GBs); the PyTorch CPU index has CPU-only wheels for
# both architectures. Pin it here so a rebuild gets the torch the tests ran with.
ARG WITH_TORCH=0
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/edgescribe \
    PATH=/opt/edgescribe/bin:$PATH
RUN python -m venv "$VIRTUAL_ENV" \
 && if [ "$WITH_TORCH" = 1 ]; then pip install --no-cache-dir --index-url "$TORCH_INDEX" "torch==${TORCH_VERSION}"; fi
WORKDIR /src
COPY pyproject.toml README.md ./
COPY edgescribe ./edgescribe
COPY model ./model
COPY service ./service
# ONNX Runtime, NumPy, PyAV (FFmpeg inside) and the small pure-Python wheels; then the embedded model must load.
RUN pip install --no-cache-dir . \
 && python -I -c "from model.runtime import load_serving_model; print('engine:', load_serving_model(None).engine)" \
 && find "$VIRTUAL_ENV" -name "__pycache__" -prune -exec rm -rf {} + \
 && rm -rf "$VIRTUAL_ENV"/lib/python*/site-packages/torch/include

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
ENV VIRTUAL_ENV=/opt/edgescribe \
    PATH=/opt/edgescribe/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    EDGESCRIBE_HOST=0.0.0.0 \
    EDGESCRIBE_PORT=8000
COPY --from=build /opt/edgescribe /opt/edgescribe
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin edgescribe
USER 10001
WORKDIR /tmp
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-m", "service.healthcheck"]
ENTRYPOINT ["edgescribe"]
CMD ["serve"]
