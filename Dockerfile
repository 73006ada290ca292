# The project as a container: `grants worker` by default, `python -m grant_worker.emulator` for the emulator.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app

# The project's own packaging, so both run on the dependencies pyproject declares.
COPY pyproject.toml README.md ./
COPY config ./config
COPY tasks ./tasks
COPY worker ./worker
COPY emulator ./emulator
COPY grant_worker ./grant_worker
RUN pip install --no-cache-dir . && rm -rf /app/*

USER nobody
EXPOSE 8787 9108
CMD ["grants", "worker"]
