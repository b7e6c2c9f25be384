// Command hello is a tiny service for kiln systems: it says it started, then reports its uptime
// once a minute until it is stopped.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

func main() {
	host, _ := os.Hostname()
	fmt.Printf("hello: up on %s (%s/%s)\n", host, runtime.GOOS, runtime.GOARCH)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	start := time.Now()
	for {
		select {
		case <-tick.C:
			fmt.Printf("hello: running for %s\n", time.Since(start).Round(time.Second))
		case s := <-sig:
			fmt.Printf("hello: %s, stopping\n", s)
			return
		}
	}
}
