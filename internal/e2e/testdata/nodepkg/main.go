// Command nodepkg says where it was built from; its only use is to be built (TestAppliance).
package main

import "os"

func main() {
	_, _ = os.Stdout.WriteString("nodepkg: built by kiln, on the build machine or a builder node\n")
}
