# keypool in a container: the compiled linux binary on a minimal glibc base, run as a non-root user.
#
#   npm run build -- --target linux-x64      # makes dist/keypool-linux-x64 (Bun binaries need glibc)
#   docker build -t keypool .
#   docker run -d -p 8787:8787 -p 8080:8080 -v keypool-data:/data \
#     -v "$PWD/tokens.txt:/etc/keypool/tokens.txt:ro" -e KEYPOOL_API_KEY=change-me keypool
#
# Your own config replaces the example: -v "$PWD/keypool.yaml:/etc/keypool/keypool.yaml:ro".

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

# 8787: broker API, /status, /metrics, dashboard. 8080: the gateway.
EXPOSE 8787 8080

# No curl in distroless: keypool checks itself (exit 0 when /health answers 200).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/keypool", "health", "--url", "http://127.0.0.1:8787"]

ENTRYPOINT ["/usr/local/bin/keypool"]
CMD ["serve", "-c", "/etc/keypool/keypool.yaml"]
