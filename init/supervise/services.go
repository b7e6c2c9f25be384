package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/kiln-os/kiln/init/bundle"
	"github.com/kiln-os/kiln/init/console"
	"github.com/kiln-os/kiln/init/guard"
)

// DefaultNamespace is the containerd namespace services run in unless their runtime.json
// names another: LinuxKit's, so that tools written for LinuxKit systems
// (`ctr -n services.linuxkit tasks ls`) find them.
const DefaultNamespace = "services.linuxkit"

// Runtime is the containerd runtime (shim) that runs services.
const Runtime = "io.containerd.runc.v2"

// Connect makes a containerd client for address and waits until containerd answers or ctx
// ends.
func Connect(ctx context.Context, address string) (*client.Client, error) {
	c, err := client.New(address, client.WithTimeout(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("containerd client for %s: %w", address, err)
	}
	for {
		ok, err := c.IsServing(ctx)
		if ok {
			return c, nil
		}
		if ctx.Err() != nil {
			_ = c.Close()
			if err == nil {
				err = errors.New("it is not serving")
			}
			return nil, fmt.Errorf("containerd at %s did not answer: %w (last error: %w)", address, ctx.Err(), err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// Services runs the services of a system through containerd.
type Services struct {
	Client     *client.Client
	Console    *console.Console
	LogDir     string // NAME.log files go here
	CgroupRoot string // where runtime.json cgroups are made
	Policy     Policy // the Mode is replaced by each service's kiln.restart annotation
	// Namespace is the containerd namespace; "" means DefaultNamespace. A service's
	// runtime.json namespace takes precedence.
	Namespace string
	// FIFODir holds the pipes that carry service output; "" means containerd's default.
	FIFODir string

	mu   sync.Mutex
	list []*Service
}

// Service is one supervised container.
type Service struct {
	Name string

	s         *Services
	b         *bundle.Bundle
	policy    Policy
	ctx       context.Context // carries the containerd namespace
	container client.Container
	stdout    *console.LineWriter
	stderr    *console.LineWriter
	log       *os.File

	mu       sync.Mutex
	task     client.Task
	stopping bool
	wake     chan struct{}
	done     chan struct{}
}

// StartAll loads every bundle in dir and starts all the services at once, as LinuxKit does:
// no service waits for another (a system that needs an order says so in its services, by
// waiting for what they need). It returns once every service has started or failed its
// first start; services that failed go on being retried by their restart policy. up and
// failed name the services of each kind, in name order.
func (s *Services) StartAll(ctx context.Context, dir string) (up, failed []string, err error) {
	bundles, err := bundle.List(dir)
	if err != nil {
		return nil, nil, err
	}
	errs := make([]error, len(bundles))
	var wg sync.WaitGroup
	for i, b := range bundles {
		wg.Add(1)
		errs[i] = errors.New("its start ended in a panic")
		guard.Go("start of service "+b.Name, s.Console.Panic, func() {
			defer wg.Done()
			errs[i] = s.start(ctx, b)
		})
	}
	wg.Wait()
	for i, b := range bundles {
		if errs[i] != nil {
			failed = append(failed, b.Name)
			continue
		}
		up = append(up, b.Name)
	}
	return up, failed, nil
}

// start prepares one service, starts its supervisor and waits for its first start.
func (s *Services) start(ctx context.Context, b *bundle.Bundle) error {
	svc, err := s.newService(ctx, b)
	if err != nil {
		s.Console.Printf("service %s not started: %v", b.Name, err)
		return err
	}
	s.mu.Lock()
	s.list = append(s.list, svc)
	s.mu.Unlock()
	first := make(chan error, 1)
	guard.Go("supervisor of service "+b.Name, s.Console.Panic, func() { svc.run(first) })
	select {
	case err = <-first:
	case <-svc.done:
		select {
		case err = <-first:
		default:
			err = errors.New("its supervisor ended before the first start")
		}
	}
	return err
}

func (s *Services) newService(ctx context.Context, b *bundle.Bundle) (*Service, error) {
	mode, err := b.Restart()
	if err != nil {
		return nil, err
	}
	svc := &Service{Name: b.Name, s: s, b: b, policy: s.Policy, wake: make(chan struct{}), done: make(chan struct{})}
	svc.policy.Mode = Mode(mode)
	ns := DefaultNamespace
	if s.Namespace != "" {
		ns = s.Namespace
	}
	if b.Runtime.Namespace != "" {
		ns = b.Runtime.Namespace
	}
	svc.ctx = namespaces.WithNamespace(context.WithoutCancel(ctx), ns)
	if u := b.Runtime.Unsupported(); len(u) > 0 {
		s.Console.Printf("service %s: runtime.json sets %s, which kiln-init does not support; ignored", b.Name, strings.Join(u, ", "))
	}
	if err := bundle.Apply(bundle.Plan(b, s.CgroupRoot)); err != nil {
		return nil, fmt.Errorf("prepare runtime.json: %w", err)
	}
	if s.LogDir != "" {
		f, err := os.OpenFile(filepath.Join(s.LogDir, b.Name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
		if err != nil {
			s.Console.Printf("service %s: no log file, console only: %v", b.Name, err)
		} else {
			svc.log = f
		}
	}
	var logw io.Writer // stays a nil interface without a file
	if svc.log != nil {
		logw = svc.log
	}
	svc.stdout = s.Console.Lines(b.Name, logw, false)
	svc.stderr = s.Console.Lines(b.Name, logw, false)
	// The root file system is the bundle's plain directory: no snapshotter, no image.
	spec := *b.Spec
	root := specs.Root{}
	if spec.Root != nil {
		root = *spec.Root
	}
	root.Path = b.RootfsPath()
	spec.Root = &root
	svc.container, err = s.newContainer(svc.ctx, b.Name, &spec)
	if err != nil {
		svc.closeLog()
		return nil, err
	}
	return svc, nil
}

// newContainer creates the container, first removing one of the same name that an earlier
// containerd run left behind.
func (s *Services) newContainer(ctx context.Context, id string, spec *specs.Spec) (client.Container, error) {
	if old, err := s.Client.LoadContainer(ctx, id); err == nil {
		if t, err := old.Task(ctx, nil); err == nil {
			_, _ = t.Delete(ctx, client.WithProcessKill)
		}
		if err := old.Delete(ctx); err != nil {
			return nil, fmt.Errorf("remove the old container %s: %w", id, err)
		}
	} else if !errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("look for an old container %s: %w", id, err)
	}
	c, err := s.Client.NewContainer(ctx, id, client.WithSpec(spec), client.WithRuntime(Runtime, nil))
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", id, err)
	}
	return c, nil
}

func (svc *Service) closeLog() {
	if svc.log != nil {
		svc.log.Close()
		svc.log = nil
	}
}

// run starts the service again and again as its policy says. The result of the first start
// goes to first.
func (svc *Service) run(first chan<- error) {
	defer close(svc.done)
	defer svc.closeLog()
	var h History
	con := svc.s.Console
	report := func(err error) {
		if first != nil {
			first <- err
			first = nil
		}
	}
	for {
		started := time.Now()
		status, err := svc.once(func() { report(nil) })
		report(err)
		if svc.isStopping() {
			return
		}
		what := fmt.Sprintf("exited (status %d)", status)
		if err != nil {
			con.Printf("service %s failed to start: %v", svc.Name, err)
			what = "failed to start"
			status = 127
		}
		d := svc.policy.Next(&h, status, time.Since(started), time.Now())
		if !d.Restart {
			con.Printf("service %s %s; not restarting: %s", svc.Name, what, d.Reason)
			return
		}
		con.Printf("service %s %s, restarting in %v", svc.Name, what, d.Delay)
		select {
		case <-time.After(d.Delay):
		case <-svc.wake:
			return
		}
	}
}

// once runs the service's task until it exits and returns its exit status; started is
// called once the task runs. An error means it did not start.
func (svc *Service) once(started func()) (int, error) {
	ctx := svc.ctx
	opts := []cio.Opt{cio.WithStreams(nil, svc.stdout, svc.stderr)}
	if svc.s.FIFODir != "" {
		opts = append(opts, cio.WithFIFODir(svc.s.FIFODir))
	}
	began := time.Now()
	task, err := svc.container.NewTask(ctx, cio.NewCreator(opts...))
	if err != nil {
		return 0, fmt.Errorf("create task: %w", err)
	}
	created := time.Now()
	exitC, err := task.Wait(ctx)
	if err != nil {
		_, _ = task.Delete(ctx, client.WithProcessKill)
		return 0, fmt.Errorf("wait for task: %w", err)
	}
	svc.mu.Lock()
	if svc.stopping {
		svc.mu.Unlock()
		_, _ = task.Delete(ctx, client.WithProcessKill)
		return 0, errors.New("stopping")
	}
	svc.task = task
	svc.mu.Unlock()
	if err := task.Start(ctx); err != nil {
		svc.setTask(nil)
		_, _ = task.Delete(ctx, client.WithProcessKill)
		return 0, fmt.Errorf("start task: %w", err)
	}
	// How long containerd took, for the boot's budget: the task is its shim started and
	// `runc create`; the start is `runc start`.
	svc.s.Console.Printf("service %s started (containerd: task %dms, start %dms)", svc.Name,
		created.Sub(began).Milliseconds(), time.Since(created).Milliseconds())
	started()
	status := svc.wait(task, exitC)
	svc.setTask(nil)
	if _, err := task.Delete(ctx); err != nil && !errdefs.IsNotFound(err) {
		svc.s.Console.Debugf("service %s: delete task: %v", svc.Name, err)
	}
	svc.stdout.Flush()
	svc.stderr.Flush()
	return status, nil
}

// wait returns the task's exit status. When containerd goes away (it is restarted by its own
// supervisor), it waits again once containerd is back; a task containerd no longer knows
// counts as exited with status 255.
func (svc *Service) wait(task client.Task, exitC <-chan client.ExitStatus) int {
	for {
		st := <-exitC
		code, _, err := st.Result()
		if err == nil {
			return int(code)
		}
		if errdefs.IsNotFound(err) {
			return 255
		}
		svc.s.Console.Debugf("service %s: lost track of its task (%v); waiting again", svc.Name, err)
		for {
			time.Sleep(time.Second)
			if svc.isStopping() {
				return 255
			}
			if _, err := task.Status(svc.ctx); err != nil {
				if errdefs.IsNotFound(err) {
					return 255
				}
				continue
			}
			c, err := task.Wait(svc.ctx)
			if err == nil {
				exitC = c
				break
			}
		}
	}
}

func (svc *Service) setTask(t client.Task) {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	svc.task = t
}

func (svc *Service) isStopping() bool {
	svc.mu.Lock()
	defer svc.mu.Unlock()
	return svc.stopping
}

// Stop ends the service: SIGTERM, SIGKILL to all its processes after grace, then removes the
// task and the container.
func (svc *Service) Stop(grace time.Duration) error {
	svc.mu.Lock()
	if !svc.stopping {
		svc.stopping = true
		close(svc.wake)
	}
	task := svc.task
	svc.mu.Unlock()
	ctx := svc.ctx
	var errs []error
	if task != nil {
		if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("send SIGTERM: %w", err))
		}
	}
	select {
	case <-svc.done:
	case <-time.After(grace):
		svc.s.Console.Printf("service %s did not stop within %v; killing it", svc.Name, grace)
		if task != nil {
			if err := task.Kill(ctx, syscall.SIGKILL, client.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("send SIGKILL: %w", err))
			}
		}
		select {
		case <-svc.done:
		case <-time.After(5 * time.Second):
			errs = append(errs, errors.New("still running 5s after SIGKILL"))
		}
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := svc.container.Delete(dctx); err != nil && !errdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("remove the container: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop service %s: %w", svc.Name, err)
	}
	return nil
}

// StopAll stops every service at once and waits for them all.
func (s *Services) StopAll(grace time.Duration) error {
	s.mu.Lock()
	list := append([]*Service(nil), s.list...)
	s.mu.Unlock()
	errs := make([]error, len(list))
	var wg sync.WaitGroup
	for i, svc := range list {
		wg.Add(1)
		guard.Go("stop service "+svc.Name, s.Console.Panic, func() {
			defer wg.Done()
			errs[i] = svc.Stop(grace)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
