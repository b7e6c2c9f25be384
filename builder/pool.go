package builder

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/containerd/platforms"
	"github.com/moby/buildkit/client"
)

// Pool hands out one BuildKit client per builder node: the remote node named for a platform,
// else the local builder (Daemon at Root), which it starts the first time a platform without a
// remote node needs it. It is safe for concurrent use; Close closes every client.
type Pool struct {
	Nodes []Node    // remote nodes by platform (ParseNodes)
	Root  string    // the local builder's state folder
	Log   io.Writer // where "starting the local builder" is said; nil for silence

	mu      sync.Mutex
	clients map[string]*client.Client
}

// Connect returns a client able to build platform and the address it talks to.
func (p *Pool) Connect(ctx context.Context, platform string) (*client.Client, string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	n, ok := FindNode(p.Nodes, platform)
	if !ok {
		d := &Daemon{Root: p.Root}
		if st, err := d.Status(ctx); err != nil || !st.Running {
			if p.Log != nil {
				fmt.Fprintf(p.Log, "starting the local builder (state in %s)\n", p.Root)
			}
			if err := d.Start(ctx); err != nil {
				return nil, "", err
			}
		}
		// The local builder builds any platform: natively, by cross-compiling in
		// --platform=$BUILDPLATFORM stages, or under emulation when binfmt_misc has it.
		n = Node{Platform: platforms.Format(platforms.DefaultSpec()), Address: d.Address()}
	}
	if cl, ok := p.clients[n.Address]; ok {
		return cl, n.Address, nil
	}
	cl, err := Connect(ctx, n)
	if err != nil {
		return nil, "", err
	}
	if p.clients == nil {
		p.clients = map[string]*client.Client{}
	}
	p.clients[n.Address] = cl
	return cl, n.Address, nil
}

// Close closes every client the pool opened.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, cl := range p.clients {
		_ = cl.Close()
		delete(p.clients, a)
	}
}
