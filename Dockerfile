# spanpipe: multi-stage build, slim non-root runtime.
#   docker build -t spanpipe:0.1.0 .
#   docker run -p 4317:4317 -p 4318:4318 -p 8888:8888 spanpipe:0.1.0
#   docker run -v $PWD/my.yaml:/etc/spanpipe/my.yaml spanpipe:0.1.0 --config /etc/spanpipe/my.yaml
# Ports (all configurable; these are the defaults of configs/container.yaml and deploy/kubernetes):
#   4317   OTLP/gRPC receiver
#   4318   OTLP/HTTP receiver (/v1/traces, /v1/metrics, /v1/logs)
#   8888   internal metrics, Prometheus text (/metrics), OTel Collector names
#   8889   `prometheus` exporter (e.g. MLflow's span-duration histogram), when a config enables it
#   13133  `health_check` extension (/, /livez, /readyz), when a config enables it
# The configs/ directory is copied to /etc/spanpipe/ (base.yaml + prod.yaml, mlflow-local.yaml, ...);
# /var/lib/spanpipe (owned by the runtime user) holds persistent queues (configs/prod.yaml's file_storage):
# mount a volume there to keep them across containers.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p spanpipe --locked && strip target/release/spanpipe

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home spanpipe \
    && mkdir -p /var/lib/spanpipe && chown 10001 /var/lib/spanpipe
COPY --from=build /src/target/release/spanpipe /usr/local/bin/spanpipe
COPY configs/ /etc/spanpipe/
USER 10001
EXPOSE 4317 4318 8888 8889 13133
# Health: GET / on the health_check extension (SPANPIPE_HEALTH_ENDPOINT, default 127.0.0.1:13133) must answer 200.
# Exec form, no shell and no extra package: the slim image has no curl or wget, but perl-base is Essential in
# Debian (always present) and its IO::Socket::INET speaks enough HTTP for this. Exit 0 healthy, 1 otherwise.
# A config without the health_check extension makes the container report "unhealthy", nothing else.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["/usr/bin/perl", "-MIO::Socket::INET", "-e", "my $s = IO::Socket::INET->new(PeerAddr => ($ENV{SPANPIPE_HEALTH_ENDPOINT} || '127.0.0.1:13133'), Timeout => 3) or exit 1; print $s \"GET / HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n\"; my $l = <$s> // ''; exit($l =~ m{^HTTP/1\\.[01] 200 } ? 0 : 1);"]
# The container listens on all interfaces; configs/local.yaml binds 127.0.0.1, so pass a config or --set endpoints.
ENTRYPOINT ["/usr/local/bin/spanpipe"]
CMD ["--config", "/etc/spanpipe/container.yaml"]
