package cliflag

import (
	"flag"
	"io"
	"slices"
	"testing"
)

func TestParseInterspersed(t *testing.T) {
	for _, tc := range []struct {
		args []string
		pos  []string
		v    string
	}{
		{[]string{"a", "-v", "x", "b"}, []string{"a", "b"}, "x"},
		{[]string{"-v=y", "a"}, []string{"a"}, "y"},
		{[]string{"a", "b", "--v", "z"}, []string{"a", "b"}, "z"},
		{[]string{"a", "--", "-v", "b"}, []string{"a", "-v", "b"}, ""},
		{nil, nil, ""},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		v := fs.String("v", "", "")
		pos, err := ParseInterspersed(fs, tc.args)
		if err != nil || !slices.Equal(pos, tc.pos) || *v != tc.v {
			t.Errorf("%q: pos %q v %q err %v; want %q %q", tc.args, pos, *v, err, tc.pos, tc.v)
		}
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if _, err := ParseInterspersed(fs, []string{"a", "-nope"}); err == nil {
		t.Error("unknown flag accepted")
	}
}
