// Package assemble turns a parsed system description (package config) into output files:
// it resolves every image reference to a digest (local cache first, then a registry), writes
// each container's runtime spec and root filesystem in LinuxKit's initrd layout, and streams
// the whole system through one or more output formats (kernel+initrd, tar, ...) in a single
// pass.
//
// It never runs containers, needs no Docker daemon and no root, and holds no image content in
// memory: layers flow from the cache to the compressed outputs.
//
// The steps, in order (see Build):
//
//  1. load and merge the YAML files, expand "@pkg:" references, validate;
//  2. resolve references to digests, honouring and then rewriting the lock file;
//  3. stream the system (kernel, init images, onboot, onshutdown, services, volumes, files)
//     into every requested format at once;
//  4. rename the finished outputs into place (nothing half-written is ever left behind).
package assemble
