// kiln-sshd: x/crypto/ssh for the protocol, creack/pty for terminals, pkg/sftp for scp and sftp.
module github.com/kiln-os/kiln/services/sshd

go 1.26.8

require (
	github.com/creack/pty v1.1.24
	github.com/pkg/sftp v1.13.12
	golang.org/x/crypto v0.59.0
	golang.org/x/sys v0.50.0
)

require github.com/kr/fs v0.1.0 // indirect
