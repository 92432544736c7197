# syntax=docker/dockerfile:1
# Multi-stage build: a static rotator binary on a distroless base, as a
# non-root numeric user. State goes under the /var/lib/rotator volume so the
# root filesystem can be read-only.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY internal ./internal
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/rotator ./cmd/rotator

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/rotator /usr/local/bin/rotator
USER 65532:65532
VOLUME ["/var/lib/rotator"]
WORKDIR /var/lib/rotator
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/rotator"]
CMD ["run", "--config", "/etc/rotator/config.yaml"]
