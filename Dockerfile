# syntax=docker/dockerfile:1
#
# rotator container image: a static binary on a distroless base.
#
#   docker build --build-arg VERSION=$(git describe --tags --always) -t rotator .
#   docker run --read-only -v rotator-state:/var/lib/rotator \
#     -v "$PWD/config.yaml:/etc/rotator/config.yaml:ro" rotator
#
# - build stage: CGO_ENABLED=0, -trimpath, the version in main.version (as
#   `make build` does); it runs on the build host's platform and cross-compiles
#   for the target, so multi-platform builds (buildx --platform) need no
#   emulation.
# - final stage: distroless/static (CA certificates, tzdata and /etc/passwd,
#   no shell, no package manager), numeric non-root user 65532.
# - the root filesystem can be read-only: the only writable path rotator needs
#   is the directory of state.path (and audit.path), /var/lib/rotator, a
#   volume owned by 65532. Point state.path at /var/lib/rotator/rotator-state.db.
# - the configuration is /etc/rotator/config.yaml ($ROTATOR_CONFIG); mount it.
# - no HEALTHCHECK: orchestrators probe GET /healthz and /readyz on the admin
#   port (set admin.listen: 0.0.0.0:9464 in a container so that they reach it).
# See docs/operations.md.

ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download && go mod verify
COPY cmd ./cmd
COPY internal ./internal
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/rotator ./cmd/rotator \
 && mkdir -p -m 0700 /out/state

FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="rotator" \
      org.opencontainers.image.description="Pushes provider credentials from Vault to Ocamba Hood integrations" \
      org.opencontainers.image.source="https://github.com/ocamba-rotator/rotator" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/rotator /usr/local/bin/rotator
# The state directory must belong to the runtime user: a named volume mounted
# here starts as a copy of it, owner included.
COPY --from=build --chown=65532:65532 /out/state /var/lib/rotator
ENV ROTATOR_CONFIG=/etc/rotator/config.yaml
USER 65532:65532
WORKDIR /var/lib/rotator
VOLUME ["/var/lib/rotator"]
EXPOSE 9464/tcp
ENTRYPOINT ["/usr/local/bin/rotator"]
CMD ["run"]
