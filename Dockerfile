# oculi on the CPU: `docker build -t oculi .` then `docker run -p 8000:8000 oculi`
# (deploy/compose.yaml and deploy/helm/oculi run it with PostgreSQL, vLLM and replicas).
FROM python:3.11-slim

# torch is pinned to the CPU build oculi is tested with; the default wheel would pull CUDA
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    OCULI_HOME=/data/oculi OCULI_ASSETS_DIR=/opt/oculi/assets

RUN python -m pip install --index-url "$TORCH_INDEX" torch==2.13.0

WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# `ray` for `oculi index --engine ray` against a cluster, `postgres` for OCULI_STORE=postgresql://...,
# `s3` for OCULI_BLOBS=s3://... (see docs/DEPLOY.md)
RUN python -m pip install ".[ray,postgres,s3]" \
    && useradd --system --uid 10001 --home-dir /data/oculi oculi \
    && mkdir -p /data/oculi /opt/oculi/assets \
    && oculi models pull \
    && chown -R oculi /data/oculi

USER oculi
WORKDIR /data/oculi
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s \
  CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status != 200)"
ENTRYPOINT ["oculi"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
