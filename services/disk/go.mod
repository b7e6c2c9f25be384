module github.com/kiln-os/kiln/services/disk

go 1.26.8

require golang.org/x/sys v0.45.0
