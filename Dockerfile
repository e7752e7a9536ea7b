# The one image of intake: api, worker and beat differ only by command.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY intake ./intake
COPY workers ./workers
COPY migrations ./migrations
RUN pip install -e . && useradd --create-home intake
USER intake
EXPOSE 8000
CMD ["intake", "serve", "--host", "0.0.0.0", "--port", "8000"]
