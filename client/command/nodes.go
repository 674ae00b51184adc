package command

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"darkchat/client"
)

// MaxFallbacks bounds the other nodes a client is given besides its own:
// a client that cannot reach one tries every other in turn.
const MaxFallbacks = 16

// nodeDialAttempt bounds one node's dial when there are others to try: a
// node that does not answer (a host gone, a dropped route) must not hold
// the client back from the next one for the whole connect timeout.
const nodeDialAttempt = 5 * time.Second

// Node is one node's gateway a client may log in through.
type Node struct {
	Name string // shown in errors: an address or a URL
	Dial func(context.Context) (client.Transport, error)
}

// Nodes dials the node in use, and when it cannot be reached the other
// nodes given, in order; the first that answers becomes the node in use.
// With one node it is a plain dial. The CLI (--fallback) and the browser
// page (its node's --web-fallback) share it: Dial is Config.Dial and Next
// KeepConfig.NextNode.
type Nodes struct {
	nodes []Node
	mu    sync.Mutex
	cur   int
	// refused marks the nodes that refused the user's key (Next): they
	// are not dialled again.
	refused []bool
}

// NewNodes returns a dialer for nodes, the first of them in use.
func NewNodes(nodes []Node) (*Nodes, error) {
	if len(nodes) == 0 || len(nodes) > 1+MaxFallbacks {
		return nil, fmt.Errorf("a client takes its node and at most %d others, not %d nodes", MaxFallbacks, len(nodes))
	}
	return &Nodes{nodes: slices.Clone(nodes)}, nil
}

// Dial connects to the node in use or, failing that, to the next that
// answers.
func (d *Nodes) Dial(ctx context.Context) (client.Transport, error) {
	d.mu.Lock()
	start := d.cur
	refused := slices.Clone(d.refused)
	d.mu.Unlock()
	var errs []error
	for i := range d.nodes {
		n := (start + i) % len(d.nodes)
		if n < len(refused) && refused[n] {
			continue
		}
		dctx, cancel := ctx, context.CancelFunc(func() {})
		if len(d.nodes) > 1 {
			dctx, cancel = context.WithTimeout(ctx, nodeDialAttempt)
		}
		t, err := d.nodes[n].Dial(dctx)
		cancel()
		if err == nil {
			d.mu.Lock()
			d.cur = n
			d.mu.Unlock()
			return t, nil
		}
		if len(d.nodes) == 1 {
			return nil, err
		}
		errs = append(errs, fmt.Errorf("%s: %w", d.nodes[n].Name, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

// Next marks the node in use as one that refuses the user, so that it is
// not dialled again, moves to the next, and reports whether any node is
// left to try.
func (d *Nodes) Next() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refused == nil {
		d.refused = make([]bool, len(d.nodes))
	}
	d.refused[d.cur] = true
	for i := 1; i < len(d.nodes); i++ {
		if n := (d.cur + i) % len(d.nodes); !d.refused[n] {
			d.cur = n
			return true
		}
	}
	// Every node refused: the user may still ask (connect) for the one
	// in use.
	d.refused[d.cur] = false
	return false
}
