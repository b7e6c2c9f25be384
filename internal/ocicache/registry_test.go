package ocicache

import (
	"bytes"
	"context"
	"errors"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-os/kiln/internal/testutil"
)

// TestRegistryPushPull pushes an image and a three-platform index to a real registry and pulls
// them into fresh caches.
func TestRegistryPushPull(t *testing.T) {
	host := testutil.StartRegistry(t)
	ctx := context.Background()
	src := newCache(t)
	imgRef, idxRef := host+"/kiln/img:1", host+"/kiln/multi:1"
	imgDesc, err := src.WriteImage(imgRef, testImage(t, amd64, "pushed"))
	if err != nil {
		t.Fatal(err)
	}
	idxDesc, err := src.WriteIndex(idxRef, testIndex(t, "pushed", amd64, arm64, s390x))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{imgRef, idxRef} {
		if err := src.Push(ctx, r, Insecure()); err != nil {
			t.Fatal(err)
		}
	}

	dst := newCache(t)
	if d, err := dst.Pull(ctx, imgRef, Insecure()); err != nil || d.Digest != imgDesc.Digest {
		t.Fatalf("pull image: %s, %v; want %s", d.Digest, err, imgDesc.Digest)
	}
	if d, err := dst.Pull(ctx, idxRef, Insecure()); err != nil || d.Digest != idxDesc.Digest {
		t.Fatalf("pull index: %s, %v; want %s", d.Digest, err, idxDesc.Digest)
	}
	for _, p := range []v1.Platform{amd64, arm64, s390x} {
		want, _, err := src.Image(idxRef, &p)
		if err != nil {
			t.Fatal(err)
		}
		got, _, err := dst.Image(idxRef, &p)
		if err != nil {
			t.Fatal(err)
		}
		if digestOf(t, got) != digestOf(t, want) {
			t.Errorf("%s: pulled %s, pushed %s", p.String(), digestOf(t, got), digestOf(t, want))
		}
		if err := readAllLayers(got); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := dst.Resolve(imgRef); err != nil || got.Digest != imgDesc.Digest {
		t.Fatalf("resolve pulled image: %v", err)
	}

	// A platform filter keeps the index digest and only the chosen child.
	one := newCache(t)
	d, err := one.Pull(ctx, idxRef, Insecure(), WithPlatforms(arm64))
	if err != nil || d.Digest != idxDesc.Digest {
		t.Fatalf("filtered pull: %s, %v", d.Digest, err)
	}
	if _, _, err := one.Image(idxRef, &arm64); err != nil {
		t.Fatal(err)
	}
	if _, _, err := one.Image(idxRef, &s390x); !errors.Is(err, ErrNotFound) {
		t.Errorf("absent platform: %v, want ErrNotFound", err)
	}
	if _, err := one.Pull(ctx, idxRef, Insecure(), WithPlatforms(v1.Platform{OS: "linux", Architecture: "riscv64"})); !errors.Is(err, ErrNotFound) {
		t.Errorf("pull of a platform the index lacks: %v", err)
	}
	// The partial index still exports and re-imports.
	var buf bytes.Buffer
	if err := one.ExportOCI(&buf, idxRef); err != nil {
		t.Fatal(err)
	}
	if _, err := newCache(t).Import(&buf); err != nil {
		t.Fatal(err)
	}
	// Pushing an index needs every child.
	if err := one.Tag(host+"/kiln/partial:1", d); err != nil {
		t.Fatal(err)
	}
	if err := one.Push(ctx, host+"/kiln/partial:1", Insecure()); err == nil {
		t.Error("pushed an index whose children are missing")
	}
	if err := one.Push(ctx, host+"/kiln/unknown:1", Insecure()); !errors.Is(err, ErrNotFound) {
		t.Errorf("push of an unknown ref: %v", err)
	}
}
