// Command probe runs in a RUN step of the hermetic build test (exec form: the image has no
// shell). It tries to open a TCP connection to $PROBE_ADDR, a listener of the test on the
// host's loopback, and writes "connected" or "isolated" to /result.
package main

import (
	"fmt"
	"net"
	"os"
	"time"
)

func main() {
	result := "isolated"
	c, err := net.DialTimeout("tcp", os.Getenv("PROBE_ADDR"), 10*time.Second)
	if err == nil {
		_ = c.Close()
		result = "connected"
	} else {
		fmt.Fprintln(os.Stderr, "probe:", err)
	}
	if err := os.WriteFile("/result", []byte(result+"\n"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		os.Exit(1)
	}
}
