# syntax=docker/dockerfile:1
# The house-prices API: python:3.11-slim, non-root, serves on $PORT (default
# 8001), HEALTHCHECK on /api/v1/ready, SIGTERM stops it gracefully.
#
# The model package gets into the image one of two ways, both pinned to one
# version by api/requirements.txt:
#
#   docker build -t house-prices-api .
#       From this source tree, with the artifact the tests verified
#       (regression_model/trained_models/, written by `tox -e train` or any tox
#       run): `regression-model train --if-needed` re-checks it (sha256 against
#       its manifest, config hash, library versions installed here) and keeps
#       it, so the image prices exactly like the tests did; the model report
#       beside it (plots the API serves) likewise. In a fresh clone with no
#       artifact, it trains one and writes its report during the build (about
#       a minute). That happens in a throwaway venv with the [train] extra; the
#       image itself carries no scikit-learn nor matplotlib: it serves the
#       compiled model tables and the PNGs as drawn.
#
#   docker build --build-arg MODEL_VERSION=0.1.0 \
#       --secret id=pip_index_url,env=PIP_INDEX_URL -t house-prices-api .
#       The published wheel, with the artifact that was trained and tested
#       before publishing, from the private index. The index URL (it carries
#       credentials) is a build secret: never an ARG, ENV or layer.
#
# Podman: podman build --pull=never --format docker -t house-prices-api .
# (--format docker keeps the HEALTHCHECK, which the OCI format drops).

FROM python:3.11-slim AS build
ARG MODEL_VERSION=""
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY constraints.txt pyproject.toml README.md ./
COPY regression_model ./regression_model
COPY api/requirements.txt ./api/requirements.txt
# One layer: install, train only if needed, check the model loads, then drop what
# serving never uses (the libraries' own test suites, and pip itself).
# hadolint ignore=DL3013
RUN --mount=type=secret,id=pip_index_url,required=false \
    set -eu; \
    if [ -n "$MODEL_VERSION" ]; then \
        PIP_INDEX_URL="$(cat /run/secrets/pip_index_url)" \
            pip install --no-cache-dir -c constraints.txt \
            "ames-regression-model==$MODEL_VERSION" -r api/requirements.txt; \
    else \
        python -m venv /opt/train \
        && /opt/train/bin/pip install --no-cache-dir -c constraints.txt ".[train]" \
        && REGRESSION_MODEL_ARTIFACT_DIR=/src/regression_model/trained_models \
            /opt/train/bin/regression-model train --if-needed \
        && REGRESSION_MODEL_ARTIFACT_DIR=/src/regression_model/trained_models \
            /opt/train/bin/regression-model report --if-needed \
        && pip install --no-cache-dir -c constraints.txt . \
        && pip install --no-cache-dir -c constraints.txt -r api/requirements.txt; \
    fi; \
    regression-model info > /dev/null; \
    find /opt/venv -depth -type d -name tests -prune -exec rm -rf {} +; \
    pip uninstall --yes --quiet pip

FROM python:3.11-slim
# The prediction log: a SQLite file in /var/lib/house-prices (mount a volume
# there to keep it), or PostgreSQL with -e DATABASE_URL=postgresql://...
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8001 \
    PREDICTION_LOG_PATH=/var/lib/house-prices/predictions.sqlite3 \
    PREDICTION_LOG_SPOOL_DIR=/var/lib/house-prices/spool
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin app \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/house-prices
# Owned by root and read-only to the app user: the model cannot be altered at run time.
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY api ./api
USER 10001:10001
EXPOSE 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8001') + '/api/v1/ready', timeout=2)"]
STOPSIGNAL SIGTERM
# Exec form: python (uvicorn) is PID 1 itself, no shell in between, so SIGTERM
# reaches the server. `python -m api` reads PORT and WEB_CONCURRENCY (workers).
CMD ["python", "-m", "api", "--host", "0.0.0.0"]
