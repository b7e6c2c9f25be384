// Command job is an onboot container for the runc tests: "job EXIT" prints a line to stdout
// and one to stderr and exits with EXIT; "job stat PATH" fails unless PATH exists; "job sleep"
// sleeps for a minute.
package main

import (
	"fmt"
	"os"
	"strconv"
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
	case len(os.Args) == 2:
		code, _ := strconv.Atoi(os.Args[1])
		fmt.Println("job out")
		fmt.Fprintln(os.Stderr, "job err")
		os.Exit(code)
	default:
		os.Exit(2)
	}
}
