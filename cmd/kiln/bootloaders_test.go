package main

import (
	"context"
	"testing"

	"github.com/kiln-os/kiln/assemble"
	"github.com/kiln-os/kiln/pkg/buildyml"
)

// kiln's default boot loaders image is tools/bootloaders at this tree's tag: when the folder
// changes, assemble.DefaultBootloaders must change with it.
func TestDefaultBootloadersFollowsTheFolder(t *testing.T) {
	ref, err := buildyml.Ref(context.Background(), "../../tools/bootloaders")
	if err != nil {
		t.Fatal(err)
	}
	if ref != assemble.DefaultBootloaders {
		t.Errorf("tools/bootloaders is %s, but assemble.DefaultBootloaders says %s: set it to the first (commit the folder first, so the tag is not a dirty one)",
			ref, assemble.DefaultBootloaders)
	}
}
