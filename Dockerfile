# ossy: run gpt-oss models locally, serving Ollama's and OpenAI's HTTP APIs on port 11434.
#
#   docker build -t ossy .
#   docker run -d -p 11434:11434 -v ossy-models:/var/lib/ossy/models --name ossy ossy
#   docker exec -it ossy ossy create gpt-oss:20b -f /path/to/Modelfile   # or mount an Ollama store, see docker-compose.yml
#   docker exec -it ossy ossy run gpt-oss:20b
#
# CPU only: torch comes from PyTorch's CPU wheel index (PyPI's default torch wheel bundles CUDA, ~2 GB more).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# torch first, in its own layer: it is the big one and changes least often.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

WORKDIR /opt/ossy
COPY pyproject.toml constraints.txt README.md ./
COPY ossy ./ossy
# The server's dependencies are pinned in constraints.txt like everything else.
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -c constraints.txt . fastapi uvicorn httpx \
    && useradd --create-home --uid 1000 ossy \
    && mkdir -p /var/lib/ossy/models \
    && chown -R ossy:ossy /var/lib/ossy

USER ossy
# OSSY_HOST: listen on every interface inside the container (the default, 127.0.0.1, would be
# unreachable through the published port). Models live in the volume below.
ENV OSSY_HOST=0.0.0.0:11434 \
    OSSY_HOME=/var/lib/ossy \
    OSSY_MODELS=/var/lib/ossy/models
VOLUME ["/var/lib/ossy/models"]
EXPOSE 11434

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:11434/api/version', timeout=4)"

CMD ["ossy", "serve"]
