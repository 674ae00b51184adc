// Package jsonlimit bounds JSON input before a decoder recurses into it.
package jsonlimit

import "fmt"

// CheckDepth refuses input whose arrays and objects nest deeper than max,
// scanning bytes outside strings (encoding/json's own limit is 10000
// levels). Input that is not JSON passes here and fails in the decoder.
func CheckDepth(data []byte, max int) error {
	depth, inString, escaped := 0, false, false
	for _, c := range data {
		switch {
		case escaped:
			escaped = false
		case inString:
			switch c {
			case '\\':
				escaped = true
			case '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > max {
				return fmt.Errorf("nested deeper than %d levels", max)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}
