# syntax=docker/dockerfile:1@sha256:ecfaec9ed6d810b56388c508f4121597bfbba70d41a6dfeee4d8cad5f295fc32
# oz — the command-line client
#
# Build from the repository root (the go.work workspace is the build context):
#   docker build -f deploy/docker/Dockerfile.oz -t ozsecrets/oz:dev .
# See deploy/README.md.

# Base images are pinned by digest (the tag says what it is, the digest which
# build of it): a rebuild gets the same bases until someone changes them here,
# in a reviewed commit. Update: docker buildx imagetools inspect IMAGE:TAG, and
# copy the Digest of the index (see deploy/README.md, "Pinning images").
FROM golang:1.26@sha256:3aff6657219a4d9c14e27fb1d8976c49c29fddb70ba835014f477e1c70636647 AS build
WORKDIR /src
# Every module of go.work must be present for workspace mode: module files
# first (a layer that changes only when dependencies do), then the sources.
COPY go.work go.work.sum ./
COPY proto/go.mod proto/go.sum proto/
COPY services/go.mod services/go.sum services/
COPY gateway/go.mod gateway/go.sum gateway/
COPY lib/go.mod lib/go.sum lib/
COPY cli/go.mod cli/go.sum cli/
COPY e2e/go.mod e2e/go.sum e2e/
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY proto/ proto/
COPY services/ services/
COPY gateway/ gateway/
COPY lib/ lib/
COPY cli/ cli/
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/oz ./cli/cmd/oz

# Static binary on distroless: no shell, no package manager, UID 65532.
# Run it with the configuration in the environment (OZ_ADDR, OZ_CA_FILE,
# OZ_TOKEN) and the CA mounted, e.g.
#   docker run --rm -e OZ_ADDR -e OZ_TOKEN -e OZ_CA_FILE=/ca.pem -v $PWD/ca.pem:/ca.pem:ro ozsecrets/oz:dev whoami
FROM gcr.io/distroless/static-debian12:nonroot@sha256:d093aa3e30dbadd3efe1310db061a14da60299baff8450a17fe0ccc514a16639
COPY --from=build /out/oz /usr/local/bin/oz
ENTRYPOINT ["/usr/local/bin/oz"]
USER 65532:65532
