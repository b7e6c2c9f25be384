//go:build tools

// Package tools names the command this package builds, so that go mod tidy keeps its
// dependencies in go.sum.
package tools

import (
	_ "github.com/opencontainers/runc"
)
