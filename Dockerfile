# Static hookroute image, run as a non-root user.
#   docker build -t hookroute .
#   docker run -p 8080:8080 -e SALESIQ_PUBLIC_KEY="$(cat salesiq-public.pem)" -v hookroute-data:/data hookroute
# Base images are named in full, so that no registry search list decides
# where they come from.
FROM docker.io/library/golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Pure Go (modernc.org/sqlite): no cgo, so the binary is fully static.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/hookroute . \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hookroute /usr/local/bin/hookroute
COPY --from=build --chown=65532:65532 /out/data /data
# The image's own config (deploy/docker/rules.yaml): ingest on 0.0.0.0:8080,
# admin on the container's loopback, SQLite in /data, and no SalesIQ key
# until one is given (SALESIQ_PUBLIC_KEY or SALESIQ_PUBLIC_KEY_FILE): it
# refuses to start without, saying how. Mount a config over it to replace it.
COPY deploy/docker/rules.yaml /etc/hookroute/rules.yaml
USER 65532:65532
WORKDIR /data
VOLUME /data
# HOOKROUTE_LISTEN is for configs written from rules.example.yaml, which
# listen on ${HOOKROUTE_LISTEN}: loopback outside a container.
ENV HOOKROUTE_CONFIG=/etc/hookroute/rules.yaml HOOKROUTE_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/hookroute"]
CMD ["serve"]
