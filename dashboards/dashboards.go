// Package dashboards holds darkchat's Grafana dashboards, the JSON files
// beside this one, embedded in FS so that tests can read every panel's
// queries:
//
//	darkchat-node.json  one node: delivery latency, message rates, drops
//	                    and rejects, sessions, logins, DMs, peers direct and
//	                    relayed, limits beside their use, GossipSub's mesh
//	                    and gossip
//	darkchat-mesh.json  every node a Prometheus scrapes: the same summed
//	                    over the instances, and per-node breakdowns
//
// Both take their Prometheus data source from a variable (datasource), so
// an operator imports them into any Grafana as they are (README, "Metrics
// and health"). Every metric a query names is one a node exports: the
// package's test starts real nodes, makes them chat and checks each name
// against their /metrics.
package dashboards

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// FS holds the dashboards, *.json.
//
//go:embed *.json
var FS embed.FS

// Query is one PromQL expression of a dashboard: a panel target's, or a
// template variable's.
type Query struct {
	Dashboard string // file name
	Panel     string // the panel's title, or "variable <name>"
	Expr      string // as written, with Grafana's variables in it
}

// panel is the part of a Grafana panel the queries are in. Rows hold
// their collapsed panels in Panels.
type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

type dashboard struct {
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"` // a string, or {"query": "..."} in newer Grafana
		} `json:"list"`
	} `json:"templating"`
}

// Files returns the dashboards' file names, sorted.
func Files() ([]string, error) {
	names, err := fs.Glob(FS, "*.json")
	sort.Strings(names)
	return names, err
}

// Queries returns every PromQL expression of every dashboard: each panel
// target's and each query variable's (label_values(...) is unwrapped to
// its series selector).
func Queries() ([]Query, error) {
	files, err := Files()
	if err != nil {
		return nil, err
	}
	var out []Query
	for _, f := range files {
		b, err := FS.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		var walk func([]panel)
		walk = func(ps []panel) {
			for _, p := range ps {
				for _, t := range p.Targets {
					out = append(out, Query{f, p.Title, t.Expr})
				}
				walk(p.Panels)
			}
		}
		walk(d.Panels)
		for _, v := range d.Templating.List {
			if v.Type != "query" {
				continue
			}
			q, _ := v.Query.(string)
			if m, ok := v.Query.(map[string]any); ok {
				q, _ = m["query"].(string)
			}
			out = append(out, Query{f, "variable " + v.Name, VariableExpr(q)})
		}
	}
	return out, nil
}

var labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$`)

// VariableExpr returns the PromQL inside a Grafana query variable:
// label_values(<selector>, <label>) gives the selector,
// query_result(<expr>) the expression, anything else is returned as is.
func VariableExpr(q string) string {
	if m := labelValues.FindStringSubmatch(q); m != nil {
		return m[1]
	}
	if s, ok := strings.CutPrefix(strings.TrimSpace(q), "query_result("); ok {
		return strings.TrimSuffix(s, ")")
	}
	return q
}

// Grafana's own interval variables, and what Expand puts in their place.
var intervals = map[string]string{
	"__rate_interval": "1m",
	"__interval":      "30s",
	"__range":         "15m",
}

var grafanaVar = regexp.MustCompile(`\$\{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-z]+)?\}|\$([a-zA-Z_][a-zA-Z0-9_]*)|\[\[([a-zA-Z_][a-zA-Z0-9_]*)\]\]`)

// Expand replaces Grafana's variables in expr so that Prometheus can run
// it: the interval ones by durations, every other by vars[name] (".*"
// when absent, which suits the regexp matchers =~ the dashboards put
// their variables in).
func Expand(expr string, vars map[string]string) string {
	return grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVar.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		if d, ok := intervals[name]; ok {
			return d
		}
		if v, ok := vars[name]; ok {
			return v
		}
		return ".*"
	})
}

// PromQL words that are not metric names: aggregation operators, binary
// set operators and modifiers, and the literals.
var keywords = map[string]bool{
	"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
	"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true,
	"limitk": true, "limit_ratio": true,
	"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true,
	"inf": true, "nan": true,
}

// Modifiers followed by a parenthesised list of label names.
var labelLists = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
}

// MetricNames returns the metric names a PromQL expression selects, in
// the order they first appear: bare names (rate(x_total[5m]) names
// x_total), {__name__="x"} and Prometheus 3's quoted {"x"}. Function
// names, aggregation operators, label names, strings, numbers, durations
// and Grafana's variables are not names. It is a scanner, not a parser:
// it does not check the syntax (Prometheus does that, in composetest).
func MetricNames(expr string) ([]string, error) {
	sels, err := Selectors(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, sel := range sels {
		if sel.Name != "" && !slices.Contains(names, sel.Name) {
			names = append(names, sel.Name)
		}
	}
	return names, nil
}

// Selector is one series selector of a PromQL expression: the metric
// name (empty if it has none) and its label matchers, values unquoted.
type Selector struct {
	Name     string
	Matchers []Matcher
}

// Matcher is a label matcher: Label Op "Value", Op one of = != =~ !~.
type Matcher struct {
	Label, Op, Value string
}

// Selectors returns the series selectors of a PromQL expression in the
// order they appear (see MetricNames for what is a name).
func Selectors(expr string) ([]Selector, error) {
	var sels []Selector
	// add starts a selector named n; the matchers that follow it, if
	// any, are added to it.
	add := func(n string) {
		sels = append(sels, Selector{Name: n})
	}
	s := expr
	i := 0
	nameEnd := -1 // where the last bare metric name ended
	skipSpace := func() {
		for i < len(s) && strings.IndexByte(" \t\r\n", s[i]) >= 0 {
			i++
		}
	}
	// str returns the string literal starting at i, unquoted enough for a
	// name, and moves past it.
	str := func() (string, error) {
		q := s[i]
		j := i + 1
		var b strings.Builder
		for j < len(s) && s[j] != q {
			if s[j] == '\\' && q != '`' && j+1 < len(s) {
				j++
			}
			b.WriteByte(s[j])
			j++
		}
		if j >= len(s) {
			return "", fmt.Errorf("unterminated string at %d in %q", i, expr)
		}
		i = j + 1
		return b.String(), nil
	}
	// until moves past the closing byte matching the opening one at i,
	// skipping strings on the way.
	until := func(closing byte) error {
		start := i
		i++
		for i < len(s) && s[i] != closing {
			if c := s[i]; c == '"' || c == '\'' || c == '`' {
				if _, err := str(); err != nil {
					return err
				}
				continue
			}
			i++
		}
		if i >= len(s) {
			return fmt.Errorf("unclosed %q at %d in %q", s[start], start, expr)
		}
		i++
		return nil
	}
	isIdentStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c >= '0' && c <= '9' }
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			if _, err := str(); err != nil {
				return nil, err
			}
		case c == '$':
			if m := grafanaVar.FindStringIndex(s[i:]); m != nil && m[0] == 0 {
				i += m[1]
			} else {
				return nil, fmt.Errorf("stray $ at %d in %q", i, expr)
			}
		case c == '[':
			if err := until(']'); err != nil {
				return nil, err
			}
		case c == '{':
			// Label matchers: label names, operators and strings; a
			// string that is not a matcher's value is a metric name, as
			// is __name__'s value.
			start := i
			i++
			// Matchers belong to the name just before the brace, if any.
			if nameEnd < 0 || strings.TrimSpace(s[nameEnd:start]) != "" {
				add("")
			}
			cur := &sels[len(sels)-1]
			label, op := "", ""
			for {
				skipSpace()
				if i >= len(s) {
					return nil, fmt.Errorf("unclosed { at %d in %q", start, expr)
				}
				switch c := s[i]; {
				case c == '}':
					i++
				case c == ',':
					label, op = "", ""
					i++
					continue
				case c == '"' || c == '\'' || c == '`':
					v, err := str()
					if err != nil {
						return nil, err
					}
					switch {
					case op == "" && label == "":
						label = v // a quoted label name, or a quoted metric name
						skipSpace()
						if i < len(s) && (s[i] == ',' || s[i] == '}') {
							cur.Name = v
							label = ""
						}
					case label == "__name__" && op == "=":
						cur.Name = v
					default:
						cur.Matchers = append(cur.Matchers, Matcher{label, op, v})
					}
					continue
				case c == '=' || c == '!' || c == '~':
					op += string(c)
					i++
					continue
				case isIdentStart(c):
					j := i
					for i < len(s) && isIdent(s[i]) {
						i++
					}
					label = s[j:i]
					continue
				case c == '$':
					if m := grafanaVar.FindStringIndex(s[i:]); m != nil && m[0] == 0 {
						i += m[1]
						continue
					}
					return nil, fmt.Errorf("stray $ at %d in %q", i, expr)
				default:
					return nil, fmt.Errorf("unexpected %q in the matchers at %d in %q", c, i, expr)
				}
				break
			}
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			// A number or a duration: 0.99, 1e3, 0x1f, 5m30s.
			for i < len(s) && (isIdent(s[i]) || s[i] == '.') {
				i++
			}
		case isIdentStart(c):
			j := i
			for i < len(s) && isIdent(s[i]) {
				i++
			}
			word := s[j:i]
			lower := strings.ToLower(word)
			skipSpace()
			switch {
			case labelLists[lower]:
				if i < len(s) && s[i] == '(' {
					if err := until(')'); err != nil {
						return nil, err
					}
				}
			case keywords[lower]:
			case i < len(s) && s[i] == '(':
				// A function call: its arguments are scanned in turn.
			default:
				add(word)
				nameEnd = j + len(word)
			}
		default:
			i++ // operators, parentheses, commas, @
		}
	}
	return sels, nil
}
