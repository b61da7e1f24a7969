# iochub's container image: a static binary on a distroless base, run as a
# non-root user. The build stage runs `make build`, the command the tests
# run (docker build is not possible on the project's CI machines).
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY . .
RUN CGO_ENABLED=0 make build

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/iochub /usr/local/bin/iochub
COPY --from=build /src/deploy/areas /etc/iochub/areas
USER nonroot:nonroot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/iochub"]
CMD ["run", "--http-addr", "0.0.0.0:8080", "--areas", "/etc/iochub/areas/bac-ninh.csv"]
