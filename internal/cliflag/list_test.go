package cliflag

import (
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func parsePositive(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q is not a positive number", s)
	}
	return n, nil
}

func TestListRepeatsAndChecksEachValue(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	l := NewList(parsePositive)
	fs.Var(l, "n", "")
	if err := fs.Parse([]string{"-n", "3", "-n", " 1 "}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l.Values(), []int{3, 1}) || l.String() != "3,1" {
		t.Fatalf("values %v, string %q; want [3 1] and \"3,1\"", l.Values(), l.String())
	}
	err := fs.Parse([]string{"-n", "0"})
	if err == nil || !strings.Contains(err.Error(), `"0" is not a positive number`) {
		t.Fatalf("error %v; want the parser's", err)
	}
	if !slices.Equal(l.Values(), []int{3, 1}) {
		t.Fatalf("a refused value changed the list to %v", l.Values())
	}
}

// A comma-separated list (the environment) is replaced by the first value
// given with Set (the command line), which later values extend.
func TestListFromCommaSeparatedIsReplacedBySet(t *testing.T) {
	l := NewList(parsePositive)
	if err := l.SetList(" 1, ,2,"); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l.Values(), []int{1, 2}) {
		t.Fatalf("values %v after SetList; want [1 2]", l.Values())
	}
	for _, s := range []string{"5", "6"} {
		if err := l.Set(s); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(l.Values(), []int{5, 6}) {
		t.Fatalf("values %v after Set; want [5 6], the list replaced", l.Values())
	}
	if err := l.SetList("7,x"); err == nil || !strings.Contains(err.Error(), `"x"`) {
		t.Fatalf("SetList with a bad element: error %v; want one naming it", err)
	}
	if !slices.Equal(l.Values(), []int{5, 6}) {
		t.Fatalf("a refused list changed the values to %v", l.Values())
	}
	var nilList *List[int]
	if nilList.Values() != nil || nilList.String() != "" {
		t.Fatal("a nil list must read as empty")
	}
}
