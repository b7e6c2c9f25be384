module github.com/kiln-os/kiln/services/metadata

go 1.26.8

require (
	github.com/diskfs/go-diskfs v1.9.4
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/djherbis/times v1.6.0 // indirect
	github.com/elliotwutingfeng/asciiset v0.0.0-20260129054604-cfde2086bc57 // indirect
	golang.org/x/sys v0.43.0 // indirect
)
