# Build: a static binary, no cgo, reproducible paths.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/typoguard ./cmd/typoguard \
 && /out/typoguard check -config deploy/typoguard.yaml

# Run: distroless static, non-root (uid 65532, numeric so Kubernetes can
# check runAsNonRoot). Docker lets unprivileged
# processes bind port 53 inside the container's network namespace.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/typoguard /usr/local/bin/typoguard
COPY deploy/typoguard.yaml /etc/typoguard/typoguard.yaml
USER 65532:65532
EXPOSE 53/udp 53/tcp
ENTRYPOINT ["/usr/local/bin/typoguard"]
CMD ["serve", "-config", "/etc/typoguard/typoguard.yaml"]
