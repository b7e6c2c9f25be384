package ocicache

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

const helperEnv = "KILN_OCICACHE_HELPER"

// writeRefs writes n distinct images named kiln/<prefix>:<i>.
func writeRefs(t testing.TB, c *Cache, prefix string, n int) error {
	for i := range n {
		ref := fmt.Sprintf("kiln/%s:%d", prefix, i)
		if _, err := c.WriteImage(ref, testImage(t, amd64, ref)); err != nil {
			return err
		}
	}
	return nil
}

// checkComplete verifies index.json parses and every named image reads back intact.
func checkComplete(t *testing.T, c *Cache, want []string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.Root(), "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var im v1.IndexManifest
	if err := json.Unmarshal(b, &im); err != nil {
		t.Fatalf("index.json is not valid: %v", err)
	}
	got := refs(t, c)
	sort.Strings(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("refs = %v\nwant %v", got, want)
	}
	for _, r := range want {
		img, _, err := c.Image(r, &amd64)
		if err != nil {
			t.Fatal(err)
		}
		if err := readAllLayers(img); err != nil {
			t.Fatalf("%s: %v", r, err)
		}
	}
	if tmp := tempFiles(t, c); len(tmp) != 0 {
		t.Errorf("temp files left: %v", tmp)
	}
}

func expectRefs(prefixes []string, n int) []string {
	var out []string
	for _, p := range prefixes {
		for i := range n {
			out = append(out, fmt.Sprintf("kiln/%s:%d", p, i))
		}
	}
	return out
}

// TestConcurrentGoroutines runs writers and a garbage collector at once: the collector must
// never take blobs that a writer has stored but not yet named.
func TestConcurrentGoroutines(t *testing.T) {
	c := newCache(t)
	prefixes := []string{"g0", "g1", "g2", "g3"}
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, len(prefixes)+1)
	done := make(chan struct{})
	for _, p := range prefixes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each goroutine opens its own Cache, as separate commands would.
			c2, err := Open(c.Root())
			if err != nil {
				errs <- err
				return
			}
			errs <- writeRefs(t, c2, p, n)
		}()
	}
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := c.Clean(false); err != nil {
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(done)
	<-gcDone
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkComplete(t, c, expectRefs(prefixes, n))
}

// TestConcurrentProcesses re-executes the test binary twice; both write into one cache at once.
// In the re-executed processes (helperEnv set) the same test is the writer instead.
func TestConcurrentProcesses(t *testing.T) {
	if v := os.Getenv(helperEnv); v != "" {
		concurrentProcessesHelper(t, v)
		return
	}
	c := newCache(t)
	prefixes := []string{"p0", "p1"}
	const n = 10
	var cmds []*exec.Cmd
	for _, p := range prefixes {
		cmd := exec.Command(os.Args[0], "-test.run=^TestConcurrentProcesses$", "-test.count=1")
		cmd.Env = append(os.Environ(), helperEnv+"="+c.Root()+"|"+p)
		out := &lockedBuf{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("helper %s output:\n%s", p, out.String())
			}
		})
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper process: %v", err)
		}
	}
	checkComplete(t, c, expectRefs(prefixes, n))
}

// concurrentProcessesHelper is what each process TestConcurrentProcesses starts does: write ten
// images named after its prefix into the cache at root, then collect garbage. v is
// "root|prefix".
func concurrentProcessesHelper(t *testing.T, v string) {
	t.Helper()
	i := strings.LastIndexByte(v, '|')
	if i < 0 {
		t.Fatalf("%s=%q, want root|prefix", helperEnv, v)
	}
	root, prefix := v[:i], v[i+1:]
	c, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeRefs(t, c, prefix, 10); err != nil {
		t.Fatal(err)
	}
	// Collect garbage between writes of the other process too.
	if _, err := c.Clean(false); err != nil {
		t.Fatal(err)
	}
}

type lockedBuf struct {
	mu sync.Mutex
	b  []byte
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b = append(l.b, p...)
	return len(p), nil
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b)
}
