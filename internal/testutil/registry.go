package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/kiln-os/kiln/internal/testenv"
)

// RegistryBinEnv names the environment variable that points at distribution's registry binary.
const RegistryBinEnv = "KILN_REGISTRY_BIN"

// StartRegistry starts distribution's registry (built by the Makefile into <module root>/bin,
// or wherever KILN_REGISTRY_BIN points) with filesystem storage in a temporary directory,
// listening on a free loopback port, and returns its "127.0.0.1:port". It waits until /v2/
// answers and stops the registry when the test ends. Without the binary the test is skipped,
// or fails under CI (see testenv.SkipOrFail).
func StartRegistry(t testing.TB) (hostPort string) {
	t.Helper()
	bin, err := registryBinary()
	if err != nil {
		testenv.SkipOrFail(t, "registry binary: %v (run make tools, or set %s)", err, RegistryBinEnv)
	}
	var lastErr error
	for range 3 { // the free port can be taken between probing and binding
		hostPort, lastErr = startRegistry(t, bin)
		if lastErr == nil {
			return hostPort
		}
	}
	t.Fatalf("starting registry: %v", lastErr)
	return ""
}

// registryBinary finds the binary: $KILN_REGISTRY_BIN, else <module root>/bin/registry.
func registryBinary() (string, error) {
	if p := os.Getenv(RegistryBinEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", RegistryBinEnv, p, err)
		}
		return p, nil
	}
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	p := filepath.Join(root, "bin", "registry")
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}

// moduleRoot walks up from the working directory to the folder holding go.mod.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// syncBuffer collects the registry's output for the test log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startRegistry(t testing.TB, bin string) (string, error) {
	port, err := freePort()
	if err != nil {
		return "", err
	}
	hostPort := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	dir := t.TempDir()
	cfg := fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, filepath.Join(dir, "data"), hostPort)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return "", err
	}
	out := &syncBuffer{}
	cmd := exec.Command(bin, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = out, out
	// No tracing exporter: the registry would otherwise try to reach a collector.
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_SDK_DISABLED=true")
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		werr := <-exited
		_ = werr // killed on purpose: the exit status says only that
	}

	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			return "", fmt.Errorf("registry exited early (%w): %s", err, out.String())
		default:
		}
		resp, err := client.Get("http://" + hostPort + "/v2/")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				break
			}
		}
		if time.Now().After(deadline) {
			stop()
			return "", fmt.Errorf("registry did not answer on %s: %w: %s", hostPort, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("registry output:\n%s", out.String())
		}
	})
	return hostPort, nil
}

// ModuleRoot returns the folder holding kiln's go.mod (the checkout the tests run in).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}
