# Build: make image (needs a Docker engine). The result is a static binary on
# distroless, running as a numeric non-root user; `authsidecar -version`
# prints the version stamped here.
FROM golang:1.26 AS build
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
# Only the sidecar's own packages: tests, deploy/ and bench/ stay out.
COPY cmd/authsidecar ./cmd/authsidecar
COPY metrics ./metrics
COPY proxy ./proxy
COPY tokens ./tokens
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /authsidecar ./cmd/authsidecar

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /authsidecar /authsidecar
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/authsidecar"]
