//go:build tools

// Package tools names the command this package builds besides kiln-buildkitd, so that go mod
// tidy keeps buildkitd's dependencies in go.sum.
package tools

import (
	_ "github.com/moby/buildkit/cmd/buildkitd"
)
