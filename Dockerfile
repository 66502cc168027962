# connector-factory as a container: `serve` (the GitHub App) by default.
#
# Two stages: the build stage compiles the release binary; the runtime stage is Debian slim with
# what the pipeline runs besides the binary (git's CA certificates for HTTPS, Python 3 for Python
# connectors' spec tests, Node.js for TypeScript connectors'), and runs as an unprivileged user.
#
#   docker build -t connector-factory .
#   docker run --env-file .factory/app.env -p 3000:3000 -v factory-data:/data connector-factory

FROM rust:1.95-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Dependencies first, so a source change does not refetch and rebuild every crate.
COPY Cargo.toml Cargo.lock ./
COPY benches ./benches
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && cargo fetch --locked
COPY src ./src
COPY registry ./registry
COPY skills ./skills
RUN cargo build --release --locked --bin connector-factory

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 python3 nodejs tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /data --create-home factory
COPY --from=build /src/target/release/connector-factory /usr/local/bin/connector-factory
USER factory
WORKDIR /data
ENV FACTORY_BIND=0.0.0.0:3000 \
    FACTORY_DATABASE_URL=sqlite:///data/factory.db
EXPOSE 3000
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=3s CMD ["python3", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3000/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["/usr/bin/tini", "--", "connector-factory"]
CMD ["serve"]
