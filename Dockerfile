# One image for every process; docker-compose.yml picks the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams streams
COPY dashboard dashboard
COPY layouts layouts
COPY assets assets
RUN pip install --no-cache-dir .
ENV DISPATCH_SHARED_DATA=/data DISPATCH_DATA_DIR=/var/lib/dispatch PYTHONUNBUFFERED=1
