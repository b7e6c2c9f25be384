//go:build e2eheavy

package e2e

// e2eArches, in make test-heavy: every architecture kiln ships (see arches_test.go).
var e2eArches = []string{"amd64", "arm64", "s390x"}
