// Command svc is a service for the supervise tests, run inside a container: it prints a line
// to stdout and one to stderr, then either exits with the status given as its argument or,
// without one, runs until SIGTERM.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	fmt.Println("svc up")
	fmt.Fprintln(os.Stderr, "svc err")
	if len(os.Args) > 1 {
		code, _ := strconv.Atoi(os.Args[1])
		time.Sleep(50 * time.Millisecond)
		os.Exit(code)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
	fmt.Println("svc bye")
}
