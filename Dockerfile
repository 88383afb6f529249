# Dockerfile - petrel-app in two stages: a Debian 12 build stage that runs the
# same build script CI uses (scripts/dev.sh), and a slim runtime stage that runs
# as a non-root user. Configuration comes from the environment (PETREL_* keys,
# see README.md); compose.yaml adds PostgreSQL and runs migrations first.
#
#   docker build -t petrel-app .
#   docker run -p 8000:8000 -e PETREL_DATABASE_URL=postgresql://... petrel-app

# ---- build ----
FROM debian:12 AS build
ENV CI=true DEBIAN_FRONTEND=noninteractive
WORKDIR /src
COPY scripts/ scripts/
# Packages first (a layer that changes only when the package list does).
RUN scripts/dev.sh deps && apt-get install -y -q --no-install-recommends nodejs npm \
    && rm -rf /var/lib/apt/lists/*
COPY . .
# The same build CI runs (warnings as errors), then the docs assets from the lock file.
RUN scripts/dev.sh build && build/petrel-app --version \
    && cd web && npm ci --no-audit --no-fund --ignore-scripts

# ---- runtime ----
FROM debian:12-slim AS runtime
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -q && apt-get install -y -q --no-install-recommends \
        libh2o-evloop0.13 libjansson4 libyaml-0-2 libpq5 libssl3 ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin petrel
WORKDIR /app
COPY --from=build /src/build/petrel-app /usr/local/bin/petrel-app
COPY --from=build /src/config/ config/
COPY --from=build /src/migrations/ migrations/
COPY --from=build /src/web/node_modules/swagger-ui-dist/ web/node_modules/swagger-ui-dist/
COPY --from=build /src/web/node_modules/redoc/bundles/ web/node_modules/redoc/bundles/
# Listen on every interface inside the container; everything else from the environment.
ENV PETREL_CONFIG=/app/config/production.example.yaml \
    PETREL_SERVER_HOST=0.0.0.0 \
    PETREL_SERVER_PORT=8000 \
    PETREL_SERVER_DOCS_ASSETS_DIR=/app/web/node_modules
USER petrel
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["petrel-app"]
CMD ["serve"]
