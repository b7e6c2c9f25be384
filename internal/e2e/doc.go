// Package e2e holds kiln's end-to-end tests: they run the kiln command as a user does, against
// real daemons, over the repository's own packages and images. The package has no code of its
// own; see its tests.
package e2e
