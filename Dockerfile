# The opsflow worker image (docker-compose.yml's `worker`): every workflow and activity.
FROM python:3.11-slim

# Recipes run over SSH on the instances.
RUN apt-get update \
    && apt-get install -y --no-install-recommends openssh-client \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
# Only what the package needs: no .venv or caches from the build context.
COPY pyproject.toml README.md ./
COPY opsflow opsflow
COPY workflows workflows
COPY activities activities
COPY client client
COPY runtime runtime
COPY worker.py ./
RUN pip install --no-cache-dir . && rm -rf /src

ENV OPSFLOW_HOME=/var/lib/opsflow \
    TEMPORAL_ADDRESS=temporal:7233 \
    PYTHONUNBUFFERED=1
VOLUME /var/lib/opsflow
WORKDIR /var/lib/opsflow

CMD ["python", "-m", "worker"]
