# keypool in a container: the compiled linux binary on a minimal glibc base, run as a non-root user.
#
#   npm run build -- --target linux-x64      # makes dist/keypool-linux-x64 (Bun binaries need glibc)
#   docker build -t keypool .
#   docker run -d -p 8787:8787 -p 8080:8080 -v keypool-data:/data \
#     -v "$PWD/tokens.txt:/etc/keypool/tokens.txt:ro" -e KEYPOOL_API_KEY=change-me keypool
#
# Your own config replaces the example: -v "$PWD/keypool.yaml:/etc/keypool/keypool.yaml:ro".
# Or no file at all: pools from the environment win over the example config, e.g. Key Pool Manager's
#   docker run -p 8769:8769 -e GPT_4_KEYS=sk-proj-xxx,sk-proj-yyy keypool
# (see docs/migrate/key-pool-manager.md; set KEYPOOL_API_KEY too, or the API hands keys to anyone).

# distroless has no shell to create /data with, so a throwaway stage makes it, owned by nonroot (65532).
FROM debian:12-slim AS data
RUN mkdir /data && chown 65532:65532 /data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --chmod=0755 dist/keypool-linux-x64 /usr/local/bin/keypool
COPY docker/keypool.yaml /etc/keypool/keypool.yaml
COPY --from=data --chown=65532:65532 /data /data

# SQLite state (key states, leases, events). A named volume starts out owned by nonroot;
# a bind-mounted host directory must be writable by uid 65532.
VOLUME ["/data"]
WORKDIR /data
USER nonroot:nonroot

# The example config is used only when the environment defines no pool (KEYPOOL_POOL_*, <MODEL>_KEYS,
# API_KEYS). Pools from the environment listen on all interfaces: the published port is the boundary,
# and keep their state on the volume (API_KEYS alone would otherwise keep it under the home directory).
ENV KEYPOOL_DEFAULT_CONFIG=/etc/keypool/keypool.yaml \
    KEYPOOL_HOST=0.0.0.0 \
    KEYPOOL_STATE_FILE=/data/keypool.db

# 8787: broker API, /status, /metrics, dashboard. 8080: the gateway. 8769: the API when Key Pool
# Manager's <MODEL>_KEYS variables configure it; 4577: api-key-lb's gateway (API_KEYS).
EXPOSE 8787 8080 8769 4577

# No curl in distroless: keypool checks itself (exit 0 when /health answers 200), at the address
# `serve` resolves from the same environment (8787 with the example config, 8769 with <MODEL>_KEYS).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/keypool", "health"]

ENTRYPOINT ["/usr/local/bin/keypool"]
CMD ["serve"]
