package dashboards

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"darkchat/tstest"
	"darkchat/tstest/chatproc"
)

func TestMetricNames(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want []string
	}{
		{`darkchat_gateway_sessions`, []string{"darkchat_gateway_sessions"}},
		{`sum by (transport) (darkchat_gateway_sessions{instance=~"$instance", job=~"$job"})`, []string{"darkchat_gateway_sessions"}},
		{`histogram_quantile(0.99, sum by (le) (rate(darkchat_channel_delivery_latency_seconds_bucket{instance=~"${instance}"}[$__rate_interval])))`,
			[]string{"darkchat_channel_delivery_latency_seconds_bucket"}},
		{`rate(a_total[5m]) / ignoring(reason) group_left sum without (kind) (rate(b_total[1h:5m] offset 10m))`, []string{"a_total", "b_total"}},
		{`process_open_fds / on (instance) process_max_fds > bool 0.8`, []string{"process_open_fds", "process_max_fds"}},
		{`{__name__="x_total", kind!="dm"} + {"y.dotted", a="b"} or count_values("v", z) and topk(3, w)`, []string{"x_total", "y.dotted", "z", "w"}},
		{`label_replace(up, "node", "$1", "instance", "(.*):.*") * 1e3 - 0x1f + .5`, []string{"up"}},
		{`sum(rate(x[$__rate_interval])) by (kind)`, []string{"x"}},
		{`max_over_time(x:recorded[5m] @ start())`, []string{"x:recorded"}},
	} {
		got, err := MetricNames(tc.expr)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("MetricNames(%s) = %q, want %q", tc.expr, got, tc.want)
		}
	}
	for _, bad := range []string{`x{a="b"`, `rate(x[5m)`, `x{a="b}`, `x{a=$}`} {
		if _, err := MetricNames(bad); err == nil {
			t.Errorf("MetricNames(%s): no error", bad)
		}
	}
}

func TestSelectors(t *testing.T) {
	got, err := Selectors(`sum by (kind) (rate(a_total{kind="dm", reason=~"x|y"}[5m])) / ignoring (r) b and {__name__="c", path!="relayed"} or d {q!~"z"}`)
	if err != nil {
		t.Fatal(err)
	}
	want := []Selector{
		{"a_total", []Matcher{{"kind", "=", "dm"}, {"reason", "=~", "x|y"}}},
		{"b", nil},
		{"c", []Matcher{{"path", "!=", "relayed"}}},
		{"d", []Matcher{{"q", "!~", "z"}}},
	}
	if !slices.EqualFunc(got, want, func(a, b Selector) bool { return a.Name == b.Name && slices.Equal(a.Matchers, b.Matchers) }) {
		t.Errorf("Selectors = %+v, want %+v", got, want)
	}
}

func TestExpand(t *testing.T) {
	got := Expand(`rate(x{instance=~"$instance", job=~"${job}", n="[[node]]"}[$__rate_interval])`, map[string]string{"job": "darkchat"})
	if want := `rate(x{instance=~".*", job=~"darkchat", n=".*"}[1m])`; got != want {
		t.Errorf("Expand = %s, want %s", got, want)
	}
	if got := VariableExpr(`label_values(darkchat_p2p_topics{job=~"$job"}, instance)`); got != `darkchat_p2p_topics{job=~"$job"}` {
		t.Errorf("VariableExpr = %s", got)
	}
}

// A dashboard Grafana imports as it is: a title and uid of its own, a
// Prometheus data source variable every panel and query uses, panels with
// unique ids, a place on the grid, and queries.
func TestDashboardsWellFormed(t *testing.T) {
	files, err := Files()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Fatalf("dashboards: %q, want a node's and a mesh's", files)
	}
	uids := map[string]string{}
	for _, f := range files {
		b, err := FS.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			UID           string           `json:"uid"`
			Title         string           `json:"title"`
			SchemaVersion int              `json:"schemaVersion"`
			Panels        []map[string]any `json:"panels"`
			Templating    struct {
				List []map[string]any `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
			t.Errorf("%s: uid %q, title %q, schemaVersion %d: all are needed", f, d.UID, d.Title, d.SchemaVersion)
		}
		if other, dup := uids[d.UID]; dup {
			t.Errorf("%s and %s have the same uid %q", f, other, d.UID)
		}
		uids[d.UID] = f
		hasDS := false
		for _, v := range d.Templating.List {
			if v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus" {
				hasDS = true
			}
			if v["type"] == "query" && !usesDatasource(v["datasource"]) {
				t.Errorf("%s: variable %v: datasource %v, want ${datasource}", f, v["name"], v["datasource"])
			}
		}
		if !hasDS {
			t.Errorf("%s: no Prometheus data source variable named datasource", f)
		}
		ids := map[float64]bool{}
		var walk func([]map[string]any)
		walk = func(ps []map[string]any) {
			for _, p := range ps {
				title, _ := p["title"].(string)
				id, _ := p["id"].(float64)
				if id == 0 || ids[id] {
					t.Errorf("%s: panel %q: id %v missing or not unique", f, title, p["id"])
				}
				ids[id] = true
				if g, ok := p["gridPos"].(map[string]any); !ok || g["w"] == nil || g["h"] == nil {
					t.Errorf("%s: panel %q has no gridPos with w and h", f, title)
				}
				if p["type"] == "row" {
					if sub, ok := p["panels"].([]any); ok {
						var inner []map[string]any
						for _, s := range sub {
							inner = append(inner, s.(map[string]any))
						}
						walk(inner)
					}
					continue
				}
				if title == "" {
					t.Errorf("%s: a %v panel without a title", f, p["type"])
				}
				if p["type"] == "text" {
					continue
				}
				if !usesDatasource(p["datasource"]) {
					t.Errorf("%s: panel %q: datasource %v, want ${datasource}", f, title, p["datasource"])
				}
				targets, _ := p["targets"].([]any)
				if len(targets) == 0 {
					t.Errorf("%s: panel %q has no queries", f, title)
				}
				refs := map[string]bool{}
				for _, tg := range targets {
					tg := tg.(map[string]any)
					if e, _ := tg["expr"].(string); strings.TrimSpace(e) == "" {
						t.Errorf("%s: panel %q: a target without expr", f, title)
					}
					ref, _ := tg["refId"].(string)
					if ref == "" || refs[ref] {
						t.Errorf("%s: panel %q: refId %q missing or repeated", f, title, ref)
					}
					refs[ref] = true
					if !usesDatasource(tg["datasource"]) {
						t.Errorf("%s: panel %q: target %s: datasource %v, want ${datasource}", f, title, ref, tg["datasource"])
					}
				}
			}
		}
		walk(d.Panels)
	}
}

// usesDatasource reports whether ds refers to the datasource variable.
func usesDatasource(ds any) bool {
	m, ok := ds.(map[string]any)
	return ok && m["type"] == "prometheus" && m["uid"] == "${datasource}"
}

// Every metric a dashboard's query names is one real nodes export: two
// nodes with --metrics, a full one and a cli one peering with it, and two
// clients that chat through them (so that the series that appear only
// once something happened, such as the latency histogram and GossipSub's
// counters, are there). A name not in either node's /metrics fails the
// test, naming the dashboard and panel.
func TestDashboardMetricsExist(t *testing.T) {
	queries, err := Queries()
	if err != nil {
		t.Fatal(err)
	}
	if len(queries) == 0 {
		t.Fatal("the dashboards have no queries")
	}
	bins, err := chatproc.Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	a := bins.StartNode(t, "A", "full", "--metrics", "127.0.0.1:0")
	b := bins.StartNode(t, "B", "cli", "--metrics", "127.0.0.1:0", "--peer", "127.0.0.1:"+strconv.Itoa(a.PeerPort))
	alice := &chatproc.Client{Proc: bins.WSClient(t, "alice", a).Proc}
	bob := &chatproc.Client{Proc: bins.TCPClient(t, "bob", b).Proc}
	for _, c := range []struct {
		cl   *chatproc.Client
		user string
	}{{alice, "alice"}, {bob, "bob"}} {
		if err := c.cl.Join("dashboards", c.user); err != nil {
			t.Fatal(err)
		}
	}
	// Until the nodes' subscriptions meet, a message reaches only its own
	// node: Converse sends again until the other side has one.
	if _, err := chatproc.Converse(alice, bob, "dashboards", "hello", 60*time.Second); err != nil {
		t.Fatal(err)
	}

	exported := map[string]string{} // name as queried → its family's type
	labels := labelSets{}
	for _, n := range []*chatproc.TestNode{a, b} {
		url := metricsURL(t, n)
		tstest.WaitFor(t, 15*time.Second, n.Name+"'s /metrics to count a delivered message", func() (bool, string) {
			body, err := get(url)
			if err != nil {
				return false, err.Error()
			}
			for name, typ := range families(body) {
				exported[name] = typ
			}
			labels.add(body)
			return counted(body, "darkchat_channel_messages_delivered_total"), "no delivery counted yet"
		})
	}
	if testing.Verbose() {
		var names []string
		for n, typ := range exported {
			names = append(names, n+" "+typ)
		}
		sort.Strings(names)
		t.Logf("the nodes export %d names:\n%s", len(names), strings.Join(names, "\n"))
	}

	// The checks themselves find a name no node exports, and a label or
	// value its series never carry.
	if missing := missingNames(`rate(darkchat_no_such_series_total[5m])`, exported); len(missing) != 1 {
		t.Fatalf("a made-up name is not reported missing: %q", missing)
	}
	if missing := labels.missing(`darkchat_p2p_connected_peers{path="relayd"} + darkchat_p2p_connected_peers{paht=~"direct"} + gossipsub_rpc_sent_total{message_type=~"ihave|iwnat"}`); len(missing) != 3 {
		t.Fatalf("made-up labels and values are not all reported: %q", missing)
	}
	perDashboard := map[string]int{}
	for _, q := range queries {
		names, err := MetricNames(q.Expr)
		if err != nil {
			t.Errorf("%s, %s: %v", q.Dashboard, q.Panel, err)
			continue
		}
		if len(names) == 0 {
			t.Errorf("%s, %s: %q names no metric", q.Dashboard, q.Panel, q.Expr)
		}
		for _, m := range missingNames(q.Expr, exported) {
			t.Errorf("%s, panel %q: %s is not a metric the nodes export (query %s)", q.Dashboard, q.Panel, m, q.Expr)
		}
		for _, m := range labels.missing(q.Expr) {
			t.Errorf("%s, panel %q: %s (query %s)", q.Dashboard, q.Panel, m, q.Expr)
		}
		perDashboard[q.Dashboard]++
	}
	t.Logf("checked %d queries: %v", len(queries), perDashboard)
}

// missingNames returns the names expr selects that exported lacks.
func missingNames(expr string, exported map[string]string) []string {
	names, _ := MetricNames(expr)
	var missing []string
	for _, n := range names {
		if _, ok := exported[n]; !ok {
			missing = append(missing, n)
		}
	}
	return missing
}

// labelSets holds, for each series name in a /metrics body, each label
// and the values it takes.
type labelSets map[string]map[string]map[string]bool

// add records the series of a /metrics body.
func (ls labelSets) add(body string) {
	for _, l := range strings.Split(body, "\n") {
		if l == "" || l[0] == '#' {
			continue
		}
		name, rest, ok := strings.Cut(l, "{")
		if !ok {
			name, _, _ = strings.Cut(l, " ")
		}
		if ls[name] == nil {
			ls[name] = map[string]map[string]bool{}
		}
		for ok && len(rest) > 0 && rest[0] != '}' {
			label, after, found := strings.Cut(rest, `="`)
			if !found {
				break
			}
			var v strings.Builder
			i := 0
			for ; i < len(after) && after[i] != '"'; i++ {
				if after[i] == '\\' && i+1 < len(after) {
					i++
				}
				v.WriteByte(after[i])
			}
			if ls[name][label] == nil {
				ls[name][label] = map[string]bool{}
			}
			ls[name][label][v.String()] = true
			rest = strings.TrimPrefix(after[min(i+1, len(after)):], ",")
		}
	}
}

// literalAlternation is a regexp value that only lists values (a|b|c).
var literalAlternation = regexp.MustCompile(`^[a-zA-Z0-9_]+(\|[a-zA-Z0-9_]+)*$`)

// missing returns, for the selectors of expr whose names the nodes
// export, each matcher on a label their series never carry, and each
// value an = or a literal =~ (a|b) asks for that the label never takes.
// job and instance (Prometheus adds them) and Grafana's variables are
// not checked.
func (ls labelSets) missing(expr string) []string {
	sels, _ := Selectors(expr)
	var out []string
	for _, sel := range sels {
		series := ls[sel.Name]
		if series == nil {
			continue // reported as a missing name
		}
		for _, m := range sel.Matchers {
			if m.Label == "job" || m.Label == "instance" {
				continue
			}
			values := series[m.Label]
			if values == nil {
				out = append(out, fmt.Sprintf("%s has no label %s", sel.Name, m.Label))
				continue
			}
			var want []string
			switch {
			case strings.Contains(m.Value, "$"):
			case m.Op == "=":
				want = []string{m.Value}
			case m.Op == "=~" && literalAlternation.MatchString(m.Value):
				want = strings.Split(m.Value, "|")
			}
			for _, v := range want {
				if !values[v] {
					out = append(out, fmt.Sprintf("%s{%s} never takes the value %q", sel.Name, m.Label, v))
				}
			}
		}
	}
	return out
}

// families returns the names a query may select in a /metrics body, each
// with its family's type: a counter's or gauge's name, a histogram's
// _bucket, _sum and _count, a summary's own name with _sum and _count.
func families(body string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(body, "\n") {
		f := strings.Fields(l)
		if len(f) != 4 || f[0] != "#" || f[1] != "TYPE" {
			continue
		}
		name, typ := f[2], f[3]
		switch typ {
		case "histogram":
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[name+s] = typ
			}
		case "summary":
			for _, s := range []string{"", "_sum", "_count"} {
				out[name+s] = typ
			}
		default:
			out[name] = typ
		}
	}
	return out
}

// counted reports whether the series name (without labels) in a /metrics
// body is above zero.
func counted(body, name string) bool {
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return err == nil && f > 0
		}
	}
	return false
}

// metricsURL is the /metrics URL n printed at start-up.
func metricsURL(t *testing.T, n *chatproc.TestNode) string {
	t.Helper()
	return strings.TrimPrefix(n.WaitPrefix("Metrics: "), "Metrics: ")
}

func get(url string) (string, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), nil
}
