# syntax=docker/dockerfile:1
# sluice container image.
#
#   docker build -t sluice --build-arg SLUICE_COMMIT=$(git rev-parse --short=12 HEAD) .
#   docker run -d --name sluice -p 53:53/udp -p 53:53/tcp \
#     -v /srv/sluice/config:/etc/sluice -v sluice-state:/var/lib/sluice sluice
#
# Three stages: `build` compiles the batched UDP socket (C) and TypeScript with the dev dependencies, `deps` installs the production
# dependencies only, and the final stage copies the results onto a clean image. Nothing of npm's dev
# tree (typescript, vitest, eslint, playwright) reaches the final stage.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
# A C compiler for the batched UDP socket (native/udp-batch.c); the image's Node has its headers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY native/ native/
COPY src/ src/
# Builds native/build/udp-batch.node, then dist/; the image must have the batched socket.
RUN npm run build && test -f native/build/udp-batch.node

FROM ${NODE_IMAGE} AS deps
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE} AS runtime
ARG SLUICE_COMMIT=""
ENV NODE_ENV=production \
    SLUICE_CONFIG=/etc/sluice/sluice.yaml \
    SLUICE_COMMIT=${SLUICE_COMMIT}

# The process runs as the unprivileged user `sluice`. The one privilege it needs, binding port 53,
# is a file capability on the node binary (CAP_NET_BIND_SERVICE and nothing else), so the container
# can run with `--cap-drop ALL --cap-add NET_BIND_SERVICE`. libcap2-bin is only needed for setcap.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && setcap cap_net_bind_service=+ep "$(readlink -f /usr/local/bin/node)" \
 && apt-get purge -y --auto-remove libcap2-bin \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 5353 sluice \
 && useradd --system --uid 5353 --gid sluice --home-dir /var/lib/sluice --no-create-home --shell /usr/sbin/nologin sluice \
 && mkdir -p /etc/sluice/lists /var/lib/sluice \
 && chown -R sluice:sluice /etc/sluice /var/lib/sluice

WORKDIR /opt/sluice
COPY --from=deps /build/node_modules/ node_modules/
COPY --from=build /build/dist/ dist/
COPY --from=build /build/native/build/ native/build/
COPY package.json ./
COPY bin/ bin/
# The dashboard is plain browser files served from src/admin/dashboard (see src/admin/dashboard.ts).
COPY src/admin/dashboard/ src/admin/dashboard/
COPY blocklists/ blocklists/
# The reference topology's config and local lists as a default; mount your own over /etc/sluice.
COPY --chown=sluice:sluice deploy/config/ /etc/sluice/
RUN chmod 0755 bin/sluice.js && ln -s /opt/sluice/bin/sluice.js /usr/local/bin/sluice

USER sluice:sluice
# Config and lists (edited with `sluice lists add`), and state: downloaded lists, audit log,
# query log files, admin token.
VOLUME ["/etc/sluice", "/var/lib/sluice"]
EXPOSE 53/udp 53/tcp 8053/tcp

# A real DNS query to the first listener and GET /healthz on the admin server; exit 0 or 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["sluice", "health", "--timeout", "2000"]

# Logs are pino JSON lines on stdout. SIGTERM stops within 5 s; SIGHUP reloads config and lists.
STOPSIGNAL SIGTERM
ENTRYPOINT ["sluice"]
CMD ["serve"]
