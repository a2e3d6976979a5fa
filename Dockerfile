# The project image: the flows, the API, Evidently UI and Dask workers all run from it
# (docker-compose.yml). Same pinned environment as `make install`: requirements.lock.
FROM python:3.11.7-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends git make libgomp1 util-linux \
 && rm -rf /var/lib/apt/lists/*

ENV PREFECT_SERVER_ANALYTICS_ENABLED=false \
    DO_NOT_TRACK=1 \
    GX_ANALYTICS_ENABLED=false \
    DVC_NO_ANALYTICS=1 \
    PREFECT_HOME=/workspace/.prefect \
    PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/workspace

WORKDIR /app
# dependencies first, so a code change does not reinstall them
COPY Makefile pyproject.toml requirements.lock ./
RUN make install
# the code, with its git history (experiments are git refs); see .dockerignore
COPY . .
RUN git config --global --add safe.directory '*'

ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["python", "-m", "flows.deployments"]
