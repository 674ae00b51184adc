package bench

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Result is one measured figure of a scenario and its baseline, measured
// in the same run. It is printed as one JSON object per line with -json.
type Result struct {
	Scenario      string  `json:"scenario"`
	Metric        string  `json:"metric"`
	Value         float64 `json:"value"`
	Unit          string  `json:"unit"`
	Baseline      string  `json:"baseline"`
	BaselineValue float64 `json:"baseline_value"`
	// Ratio is Value / BaselineValue.
	Ratio float64 `json:"ratio"`
	// DeliveredPct is the share of expected deliveries that happened, for
	// scenarios that count messages.
	DeliveredPct *float64 `json:"delivered_pct,omitempty"`
	// BaselineDeliveredPct is the same for the baseline, where counted.
	BaselineDeliveredPct *float64 `json:"baseline_delivered_pct,omitempty"`
	// Target is the goal, in words ("ratio >= 0.8"); Met says whether this
	// run reached it.
	Target string `json:"target,omitempty"`
	Met    *bool  `json:"met,omitempty"`
	// Note qualifies the figure (sample size, rounds, parameters).
	Note string `json:"note,omitempty"`
}

// ErrAssertion marks a scenario whose run broke one of its invariants
// (100% delivery, one verification per node), as opposed to missing a
// performance target, which is only reported.
var ErrAssertion = errors.New("assertion failed")

// target is a scenario's goal for one result.
type target struct {
	desc string
	ok   func(value, ratio float64) bool
}

func ratioAtLeast(x float64) target {
	return target{"ratio >= " + ftoa(x), func(_, r float64) bool { return r >= x }}
}

func valueAtMost(x float64, unit string) target {
	return target{"value <= " + ftoa(x) + " " + unit, func(v, _ float64) bool { return v <= x }}
}

func valueAtLeast(x float64, unit string) target {
	return target{"value >= " + ftoa(x) + " " + unit, func(v, _ float64) bool { return v >= x }}
}

// newResult fills in the ratio and the target verdict.
func newResult(scenario, metric string, value float64, unit, baseline string, baselineValue float64, t *target) Result {
	r := Result{
		Scenario: scenario, Metric: metric, Value: round(value), Unit: unit,
		Baseline: baseline, BaselineValue: round(baselineValue),
	}
	if baselineValue != 0 {
		r.Ratio = round(value / baselineValue)
	}
	if t != nil {
		met := t.ok(value, r.Ratio)
		r.Target, r.Met = t.desc, &met
	}
	return r
}

func pct(p float64) *float64 { p = round(p); return &p }

// round keeps four significant digits: more is noise on this machine.
func round(x float64) float64 {
	if x == 0 || math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	f, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 4, 64), 64)
	return f
}

func ftoa(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// WriteTable prints results as an aligned table.
func WriteTable(w io.Writer, results []Result) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tMETRIC\tVALUE\tBASELINE\tBASELINE VALUE\tRATIO\tDELIVERED\tTARGET\tMET")
	for _, r := range results {
		delivered := "-"
		if r.DeliveredPct != nil {
			delivered = ftoa(*r.DeliveredPct) + "%"
		}
		if r.BaselineDeliveredPct != nil {
			delivered += " (base " + ftoa(*r.BaselineDeliveredPct) + "%)"
		}
		met := "-"
		if r.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*r.Met]
		}
		fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Scenario, r.Metric, ftoa(r.Value), r.Unit, r.Baseline, ftoa(r.BaselineValue),
			ftoa(r.Ratio), delivered, orDash(r.Target), met)
	}
	tw.Flush()
	printed := map[string]bool{}
	for _, r := range results {
		if r.Note != "" && !printed[r.Scenario+r.Note] {
			printed[r.Scenario+r.Note] = true
			fmt.Fprintf(w, "  %s/%s: %s\n", r.Scenario, r.Metric, r.Note)
		}
	}
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}
