module github.com/kiln-os/kiln/services/time

go 1.26.8

require (
	github.com/beevik/ntp v1.6.0
	golang.org/x/sys v0.48.0
)

require golang.org/x/net v0.59.0 // indirect
