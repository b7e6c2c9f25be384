// Command job is an onboot container for the runc tests: "job EXIT" prints a line to stdout
// and one to stderr and exits with EXIT; "job stat PATH" fails unless PATH exists; "job sleep"
// sleeps for a minute; "job nap DURATION" sleeps for DURATION and exits 0; "job trap" prints
// "job got TERM" and exits 0 on SIGTERM (else sleeps a minute); "job ignore-term" ignores
// SIGTERM and sleeps a minute.
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
	switch {
	case len(os.Args) == 3 && os.Args[1] == "stat":
		if _, err := os.Stat(os.Args[2]); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
		fmt.Println("found", os.Args[2])
	case len(os.Args) == 2 && os.Args[1] == "sleep":
		time.Sleep(time.Minute)
	case len(os.Args) == 3 && os.Args[1] == "nap":
		d, err := time.ParseDuration(os.Args[2])
		if err != nil {
			fmt.Println(err)
			os.Exit(2)
		}
		time.Sleep(d)
	case len(os.Args) == 2 && os.Args[1] == "trap":
		term := make(chan os.Signal, 1)
		signal.Notify(term, syscall.SIGTERM)
		fmt.Println("job waiting")
		select {
		case <-term:
			fmt.Println("job got TERM")
		case <-time.After(time.Minute):
		}
	case len(os.Args) == 2 && os.Args[1] == "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("job ignoring TERM")
		time.Sleep(time.Minute)
	case len(os.Args) == 2:
		code, _ := strconv.Atoi(os.Args[1])
		fmt.Println("job out")
		fmt.Fprintln(os.Stderr, "job err")
		os.Exit(code)
	default:
		os.Exit(2)
	}
}
