// Command hello is a tiny service for kiln systems and their tests. By default it says it
// started, then reports its uptime once a minute until it is stopped. With -once it prints its
// message and exits (for onboot and onshutdown containers); with -exit-after it exits with
// -exit-code after that long (to exercise a supervisor's restart policy).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"
)

func main() {
	once := flag.Bool("once", false, "print the arguments (or a greeting) and exit 0")
	exitAfter := flag.Duration("exit-after", 0, "exit after this long (0: run until stopped)")
	exitCode := flag.Int("exit-code", 0, "the exit status for -exit-after")
	flag.Parse()
	host, _ := os.Hostname()
	if *once {
		msg := strings.Join(flag.Args(), " ")
		if msg == "" {
			msg = "hello"
		}
		fmt.Printf("hello: %s (on %s, %s/%s)\n", msg, host, runtime.GOOS, runtime.GOARCH)
		return
	}
	fmt.Printf("hello: up on %s (%s/%s)\n", host, runtime.GOOS, runtime.GOARCH)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	var deadline <-chan time.Time
	if *exitAfter > 0 {
		deadline = time.After(*exitAfter)
	}
	start := time.Now()
	for {
		select {
		case <-tick.C:
			fmt.Printf("hello: running for %s\n", time.Since(start).Round(time.Second))
		case <-deadline:
			fmt.Printf("hello: exiting with status %d after %s, as asked\n", *exitCode, *exitAfter)
			os.Exit(*exitCode)
		case s := <-sig:
			fmt.Printf("hello: %s, stopping\n", s)
			return
		}
	}
}
