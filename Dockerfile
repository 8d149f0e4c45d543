# keygate's container image: a static binary on an empty base, run as a
# non-root user, with only /var/lib/keygate writable.
#
#   docker build -t keygate .                      # from source (pulls golang)
#   docker run --read-only -p 8787:8787 -p 8788:8788 -v keygate-data:/var/lib/keygate \
#     -e KEYGATE_TLS_SELF_SIGNED=true keygate      # a trial; see docs/production.md
#
# BUILD=prebuilt takes a binary built beforehand (CGO_ENABLED=0 go build -o
# dist/keygate ./cmd/keygate) and dist/ca-certificates.crt instead of
# compiling in a golang image, for machines that cannot pull one.
ARG GO_IMAGE=golang:1.26-bookworm
ARG BUILD=source

FROM ${GO_IMAGE} AS build-source
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=
# The SQLite driver is pure Go (modernc.org/sqlite): no cgo, no libc.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/keygate ./cmd/keygate \
 && cp /etc/ssl/certs/ca-certificates.crt /out/ca-certificates.crt

FROM scratch AS build-prebuilt
COPY dist/keygate dist/ca-certificates.crt /out/

FROM build-${BUILD} AS build

FROM scratch
COPY deploy/container/etc/ /etc/
COPY --from=build /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/keygate /usr/local/bin/keygate
COPY --chown=65532:65532 --chmod=0700 deploy/container/data/ /var/lib/keygate/
# Settings come from KEYGATE_* variables and, with --config or
# KEYGATE_CONFIG, a mounted file. Listening on all interfaces needs TLS:
# KEYGATE_TLS_CERT and KEYGATE_TLS_KEY (mounted from a Secret), or
# KEYGATE_TLS_SELF_SIGNED=true for a trial; keygate refuses plain HTTP off
# loopback unless KEYGATE_ALLOW_PLAIN_HTTP=true says a TLS proxy is in front.
# Logs are JSON lines on stdout, and nothing else is: no admin credential is
# printed into the log pipeline; issue the first one from inside with
#   docker exec CONTAINER keygate admin token create --role owner
ENV KEYGATE_DATA_DIR=/var/lib/keygate \
    KEYGATE_LISTEN=0.0.0.0:8787 \
    KEYGATE_ADMIN_LISTEN=0.0.0.0:8788 \
    KEYGATE_LOG_FORMAT=json \
    KEYGATE_LOG_OUTPUT=stdout \
    KEYGATE_BOOTSTRAP_CREDENTIAL=none \
    HOME=/var/lib/keygate
USER 65532:65532
WORKDIR /var/lib/keygate
VOLUME /var/lib/keygate
EXPOSE 8787 8788
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["/usr/local/bin/keygate", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/keygate"]
CMD ["serve"]
