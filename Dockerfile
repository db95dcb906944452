# Build stage: compile against the committed .sqlx query data, so no database is needed.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
ENV SQLX_OFFLINE=true
RUN cargo build --release --locked && strip target/release/kiss-auth

# Run stage: a small Debian image with the binary only, as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home kiss
COPY --from=build /src/target/release/kiss-auth /usr/local/bin/kiss-auth
USER kiss
ENV KISS_BIND=0.0.0.0:8080
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --retries=10 CMD curl -fsS http://127.0.0.1:8080/readyz || exit 1
ENTRYPOINT ["kiss-auth"]
CMD ["serve"]
