# One image for every service of the project: sandbox, worker and api (docker-compose.yml picks the
# command per service). Node 20 on Debian bookworm, the same as development.
FROM node:20-bookworm-slim AS deps
# better-sqlite3 (the sandbox ledger) compiles from source when no prebuilt binary fits.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# The project's .npmrc points node-gyp at Debian's Node headers (/usr); this image's Node is in /usr/local.
ENV npm_config_nodedir=/usr/local
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
# openssl: the sandbox generates its callback-signing certificate with it. tini: signals reach the service.
RUN apt-get update \
 && apt-get install -y --no-install-recommends openssl ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production
COPY --from=deps /app/node_modules ./node_modules
COPY . .
RUN mkdir -p /app/.data/sandbox && chown -R node:node /app/.data
USER node
EXPOSE 3000 8701
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["npm", "run", "api"]
