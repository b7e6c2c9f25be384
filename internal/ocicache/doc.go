// Package ocicache is kiln's local image store: an OCI image layout (oci-layout, index.json,
// blobs/sha256/...) at ~/.kiln/cache by default, that other OCI tools (go-containerregistry's
// layout package, skopeo, BuildKit's oci-layout named contexts) can read as is.
//
// It names images by canonical reference (the annotation org.opencontainers.image.ref.name in
// index.json), writes every blob atomically after checking its digest and size, verifies every
// blob again while it is read, and lets several kiln processes share one cache through file locks
// (see README.md). It also moves images in and out: OCI layout tars (Import, ExportOCI, and
// ImportBlobs, which stores a tar's blobs without naming them), registries (Pull, Push, through
// go-containerregistry's remote package), and a root filesystem tar, which ImportRootfs wraps
// as a one-layer image for the first base image, which has no image to start from.
//
// It does not unpack layers, build images from instructions or decide which platform a build
// wants: callers pass a platform, and layer contents are opaque blobs here (ImportRootfs only
// checks that its input is a well-formed tar).
package ocicache
