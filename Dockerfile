# Static hookroute image, run as a non-root user.
#   docker build -t hookroute .
#   docker run -p 8080:8080 -v $PWD/rules.yaml:/etc/hookroute/rules.yaml -v hookroute-data:/data hookroute
FROM golang:1.26 AS build
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
COPY rules.example.yaml /etc/hookroute/rules.yaml
COPY examples /etc/hookroute/examples
USER 65532:65532
WORKDIR /data
# rules.example.yaml listens on ${HOOKROUTE_LISTEN}, loopback outside a
# container; the admin listener (metrics, API) stays on the container's
# loopback unless a config says otherwise.
ENV HOOKROUTE_CONFIG=/etc/hookroute/rules.yaml HOOKROUTE_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/hookroute"]
CMD ["serve"]
