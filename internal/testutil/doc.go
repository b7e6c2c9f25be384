// Package testutil holds helpers shared by kiln's tests: starting the real daemons that
// integration tests talk to (an OCI registry, ...) on loopback ports picked at random, and
// cleaning them up when the test ends.
//
// It is for tests only: nothing outside _test.go files may import it. It fakes nothing; when a
// daemon's binary is missing the test is skipped locally and fails under CI (see
// internal/testenv).
package testutil
