# chargewatch: one image for every role (ingest, process, sink, serve-query, compact, topics).
#
#   docker build -t chargewatch:0.1.0 .
#
# The build stage runs the same cargo command CI runs for the release binary; librdkafka is
# built from rdkafka's bundled sources with the C toolchain, as on the CI machines.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin chargewatch \
 && install -D -m 0755 target/release/chargewatch /out/chargewatch

FROM debian:bookworm-slim
# CA certificates for TLS to object stores and brokers; nothing else is needed at run time.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 chargewatch \
 && useradd --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin chargewatch
COPY --from=build /out/chargewatch /usr/local/bin/chargewatch
# The built-in rules are compiled in; their sources are here to read and to copy as a start
# for a user rules directory (processor.rules). The example config documents every key.
COPY processor/rules /usr/share/chargewatch/rules
COPY config/chargewatch.example.toml /etc/chargewatch/chargewatch.toml
ENV CHARGEWATCH_CONFIG=/etc/chargewatch/chargewatch.toml
USER 10001:10001
# terminals, ingest admin, processor admin, sink admin, query HTTP, Flight SQL
EXPOSE 32960 9180 9466 9467 9468 50051
ENTRYPOINT ["chargewatch"]
CMD ["--help"]
