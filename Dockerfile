# spanpipe: multi-stage build, slim non-root runtime.
#   docker build -t spanpipe .
#   docker run -p 4317:4317 -p 4318:4318 spanpipe --config /etc/spanpipe/config.yaml
# Ports: 4317 OTLP/gRPC, 4318 OTLP/HTTP, 8888 internal metrics (/metrics).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p spanpipe --locked && strip target/release/spanpipe

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home spanpipe
COPY --from=build /src/target/release/spanpipe /usr/local/bin/spanpipe
COPY configs/ /etc/spanpipe/
USER 10001
EXPOSE 4317 4318 8888
# The container listens on all interfaces; configs/local.yaml binds 127.0.0.1, so pass a config or --set endpoints.
ENTRYPOINT ["/usr/local/bin/spanpipe"]
CMD ["--config", "/etc/spanpipe/container.yaml"]
