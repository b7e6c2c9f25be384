// Package checkout holds tests of the repository itself: facts that several files must agree
// on (the Go version of every module and of the tools/go package). It has no code.
package checkout
