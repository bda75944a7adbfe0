# syntax=docker/dockerfile:1
# kmipd as a rootless container image: see docs/operating.md, "Running kmipd in a container".
#
#   docker build -t kmipd .
#   docker run -d --name kmipd -p 5696:5696 -v kmipd-data:/var/lib/kmipd kmipd \
#     serve --data /var/lib/kmipd --san kms.example.com
#
# The process runs as uid/gid 10001, never root; everything it keeps (CA, server certificate,
# master key, keystore, audit trail) is in the volume /var/lib/kmipd. Secrets come from files
# (KMIPD_PKCS11_PIN_FILE, KMIPD_DB_PASSWORD_FILE, ...: e.g. Docker secrets in /run/secrets).
# test/contrib/dockerfile.test.ts checks this file statically and builds what it copies.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: dependencies (with the native addons), TypeScript, then production dependencies only
FROM ${NODE_IMAGE} AS build
# better-sqlite3 and pkcs11js are native addons: compiled here when no prebuilt binary fits.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
# Without scripts: `prepare` would build before the sources are here (and this layer is cached
# until the lock file changes). The addons' own install scripts run in `npm rebuild` below.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY src ./src
RUN npm rebuild better-sqlite3 pkcs11js \
 && npm run build \
 && npm prune --omit=dev

# ---- runtime: Node.js, the compiled code and its production dependencies, a non-root user
FROM ${NODE_IMAGE}
RUN groupadd --system --gid 10001 kmipd \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/kmipd --no-create-home --shell /usr/sbin/nologin kmipd \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/kmipd
WORKDIR /opt/kmipd
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist/src ./dist/src
COPY --from=build /src/bin ./bin
COPY contrib/systemd/kmipd-ready.cjs ./contrib/kmipd-ready.cjs
RUN ln -s /opt/kmipd/bin/kmipd /usr/local/bin/kmipd

# KMIP on 0.0.0.0:5696 (the default). The admin listener (/livez, /readyz, /health, /metrics) on
# 127.0.0.1:5697 inside the container, for the health check; to publish 5697 set
# KMIPD_ADMIN_HOST=0.0.0.0 (it then requires an admin client certificate, see docs/operating.md).
ENV NODE_ENV=production \
    KMIPD_DATA=/var/lib/kmipd \
    KMIPD_ADMIN_PORT=5697
EXPOSE 5696
VOLUME ["/var/lib/kmipd"]
USER 10001:10001

# Healthy = /readyz answers 200: keystore, master key (an HSM round trip with PKCS#11), server
# certificate, schema. A node one-liner's worth of script: the image has no curl.
HEALTHCHECK --interval=30s --timeout=15s --start-period=60s --retries=3 \
  CMD ["node", "/opt/kmipd/contrib/kmipd-ready.cjs", "--url", "https://127.0.0.1:5697/readyz", "--ca", "/var/lib/kmipd/pki/ca.crt", "--timeout", "3"]

# kmipd handles SIGTERM itself (requests in flight finish, then it exits) and SIGHUP (reload).
ENTRYPOINT ["node", "/opt/kmipd/bin/kmipd"]
CMD ["serve", "--data", "/var/lib/kmipd"]
