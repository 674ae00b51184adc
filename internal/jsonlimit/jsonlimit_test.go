package jsonlimit

import "testing"

func TestCheckDepth(t *testing.T) {
	for in, ok := range map[string]bool{
		`{"a":[1,{"b":2}]}`:        true,
		`[[[[]]]]`:                 true,
		`[[[[[]]]]]`:               false,
		`{"s":"[[[[[[[[[[[[[[[["}`: true, // brackets inside strings do not count
		`{"s":"\"[[[[[[[[[["}`:     true,
		`not json`:                 true,
	} {
		if err := CheckDepth([]byte(in), 4); (err == nil) != ok {
			t.Errorf("%s: %v", in, err)
		}
	}
}
