package command

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"darkchat/client"
)

// fakeNodes returns nodes that answer or not as up says, and records the
// order they were dialled in.
func fakeNodes(up []bool, dialled *[]int) []Node {
	nodes := make([]Node, len(up))
	for i := range up {
		nodes[i] = Node{Name: fmt.Sprintf("node%d", i), Dial: func(context.Context) (client.Transport, error) {
			*dialled = append(*dialled, i)
			if !up[i] {
				return nil, errors.New("connection refused")
			}
			return nil, nil
		}}
	}
	return nodes
}

// A client moves to the next node that answers, stays with it, and never
// dials again a node that refused the user's key, until every one has.
func TestNodesMoveOnAndSkipRefusers(t *testing.T) {
	up := []bool{false, true, true}
	var dialled []int
	d, err := NewNodes(fakeNodes(up, &dialled))
	if err != nil {
		t.Fatal(err)
	}
	dial := func() error { _, err := d.Dial(context.Background()); return err }
	if err := dial(); err != nil || fmt.Sprint(dialled) != "[0 1]" {
		t.Fatalf("first dial with node 0 down: %v, dialled %v, want node 0 then 1", err, dialled)
	}
	up[0] = true
	dialled = nil
	if err := dial(); err != nil || fmt.Sprint(dialled) != "[1]" {
		t.Fatalf("second dial: %v, dialled %v, want the node in use (1) only", err, dialled)
	}
	// Node 1 refuses the user: the next is 2, and then 0.
	if !d.Next() {
		t.Fatal("Next with two nodes left reported none")
	}
	up[2] = false
	dialled = nil
	if err := dial(); err != nil || fmt.Sprint(dialled) != "[2 0]" {
		t.Fatalf("after node 1 refused: %v, dialled %v, want 2 then 0, never 1", err, dialled)
	}
	if !d.Next() || d.Next() {
		t.Fatal("Next: want one node left (2) after 0 refused, then none")
	}

	up = []bool{false, false}
	dialled = nil
	d, _ = NewNodes(fakeNodes(up, &dialled))
	if err := dial(); err == nil || fmt.Sprint(dialled) != "[0 1]" || !errorsNameNodes(err, "node0", "node1") {
		t.Fatalf("every node down: %v, dialled %v, want an error naming both", err, dialled)
	}
	if _, err := NewNodes(make([]Node, 2+MaxFallbacks)); err == nil {
		t.Errorf("NewNodes took %d nodes", 2+MaxFallbacks)
	}
}

func errorsNameNodes(err error, names ...string) bool {
	for _, n := range names {
		if !strings.Contains(err.Error(), n+": ") {
			return false
		}
	}
	return true
}
