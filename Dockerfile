# syntax=docker/dockerfile:1
# One image for the app (`moesearch ui`) and the model server (`moesearch model serve`).
#   CPU (default):  docker build -t moesearch .
#   NVIDIA GPU:     docker build --build-arg BASE=nvidia/cuda:12.6.3-devel-ubuntu24.04 --build-arg GPU=cuda -t moesearch:cuda .
# (docker-compose.yml builds both through its `cpu` and `gpu` profiles.)

ARG BASE=python:3.11-slim-bookworm

# ---- build: compilers, the virtual environment, llama.cpp built from source ----
FROM ${BASE} AS build
ARG GPU=""
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update && apt-get install -y --no-install-recommends build-essential cmake git python3 python3-venv python3-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first and CPU-only unless GPU=cuda, so that nothing pulls a multi-GB CUDA build by accident
RUN if [ "$GPU" = "cuda" ]; then pip install "torch==2.13.0"; \
    else pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu; fi
# llama.cpp's native build crashes on some CPUs (AMX matmul): build for any AVX2 CPU, or with CUDA
RUN if [ "$GPU" = "cuda" ]; then export CMAKE_ARGS="-DGGML_CUDA=on"; \
    else export CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"; fi \
    && pip install "llama-cpp-python>=0.3.8"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY agent ./agent
COPY retrieval ./retrieval
COPY model_runtime ./model_runtime
COPY ui ./ui
COPY eval ./eval
RUN pip install .

# ---- runtime: the environment only, run as a non-root user ----
FROM ${BASE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    MOESEARCH_DATA_DIR=/data MOESEARCH_MODELS_DIR=/models
RUN apt-get update && apt-get install -y --no-install-recommends python3 libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && (id -u 1000 >/dev/null 2>&1 && userdel -r "$(id -nu 1000)" || true) \
    && useradd --create-home --uid 1000 moesearch \
    && mkdir -p /data /models && chown moesearch:moesearch /data /models
COPY --from=build /opt/venv /opt/venv
USER moesearch
WORKDIR /home/moesearch
EXPOSE 8501 8080
CMD ["moesearch", "ui", "--host", "0.0.0.0", "--port", "8501"]
