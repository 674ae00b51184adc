package cliflag

import "strings"

// List is a repeatable flag. Each value is parsed, and so checked, by the
// flag's own parse function as soon as it is given, so a mistake is reported
// with the flag that carries it; parse's errors name the value, since a
// list may hold several. The flag owns the parsed values; Values
// returns them in the order given.
//
// A list can also arrive as one comma-separated string (SetList, how a
// command takes a repeatable flag from the environment). Such a list is
// replaced, not extended, by the first value given with Set: the command
// line, parsed after the environment, overrides it.
type List[T any] struct {
	parse    func(string) (T, error)
	values   []T
	given    []string // the accepted values as given (trimmed), for String
	fromList bool     // values came from SetList and no Set has come since
}

// NewList returns an empty repeatable flag whose values parse makes.
func NewList[T any](parse func(string) (T, error)) *List[T] {
	return &List[T]{parse: parse}
}

// Values returns the values given, in order; nil for none.
func (l *List[T]) Values() []T {
	if l == nil {
		return nil
	}
	return l.values
}

// String is the values as given, comma-separated (what SetList accepts).
func (l *List[T]) String() string {
	if l == nil {
		return ""
	}
	return strings.Join(l.given, ",")
}

// Set adds one value (flag.Value). Surrounding space is ignored.
func (l *List[T]) Set(s string) error {
	s = strings.TrimSpace(s)
	v, err := l.parse(s)
	if err != nil {
		return err
	}
	if l.fromList {
		l.values, l.given, l.fromList = nil, nil, false
	}
	l.values = append(l.values, v)
	l.given = append(l.given, s)
	return nil
}

// SetList replaces the values with those of a comma-separated list; empty
// elements are skipped. On error the flag is left unchanged.
func (l *List[T]) SetList(commaSeparated string) error {
	next := List[T]{parse: l.parse}
	for _, s := range strings.Split(commaSeparated, ",") {
		if strings.TrimSpace(s) == "" {
			continue
		}
		if err := next.Set(s); err != nil {
			return err
		}
	}
	l.values, l.given, l.fromList = next.values, next.given, true
	return nil
}
