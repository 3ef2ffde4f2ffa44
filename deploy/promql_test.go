package deploy

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

var promqlParser = parser.NewParser(parser.Options{})

// metricNames parses a PromQL expression and returns the metric names it
// selects.
func metricNames(expr string) ([]string, error) {
	e, err := promqlParser.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == "__name__" {
					name = m.Value
				}
			}
			names = append(names, name)
		}
		return nil
	})
	return names, nil
}

// unfiltered returns the authsidecar_ metrics that expr selects without a
// matcher on label.
func unfiltered(expr, label string) ([]string, error) {
	e, err := promqlParser.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok && strings.HasPrefix(vs.Name, "authsidecar_") &&
			!slices.ContainsFunc(vs.LabelMatchers, func(m *labels.Matcher) bool { return m.Name == label }) {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names, nil
}

// unknownMetrics returns the metrics expr selects that are not exported.
func unknownMetrics(expr string, exported map[string]bool) ([]string, error) {
	names, err := metricNames(expr)
	if err != nil {
		return nil, err
	}
	var unknown []string
	for _, n := range names {
		if !exported[n] && !slices.Contains(unknown, n) {
			unknown = append(unknown, n)
		}
	}
	return unknown, nil
}

// grafanaVars are the dashboard's variables, replaced by what Grafana would
// put there before the expression is parsed.
var grafanaVars = regexp.MustCompile(`\$(__rate_interval|__interval|__range)\b|\$\{?(namespace|pod|route)\}?`)

func expandGrafana(expr string) string {
	return grafanaVars.ReplaceAllStringFunc(expr, func(v string) string {
		if v[1] == '_' {
			return "5m"
		}
		return ".*"
	})
}

// The checker must be able to fail: a misspelt metric, a function in place
// of a metric and bad syntax are caught.
func TestUnknownMetricsCatchesMistakes(t *testing.T) {
	exp := map[string]bool{"authsidecar_requests_total": true, "authsidecar_request_duration_seconds_bucket": true}
	for expr, want := range map[string][]string{
		`sum(rate(authsidecar_requests_total[5m]))`:                                                     nil,
		`histogram_quantile(0.99, sum by (le) (rate(authsidecar_request_duration_seconds_bucket[5m])))`: nil,
		`sum(rate(authsidecar_request_total[5m]))`:                                                      {"authsidecar_request_total"},
		`authsidecar_requests_total / on() authsidecar_request_duration_seconds_count`:                  {"authsidecar_request_duration_seconds_count"},
		`{__name__="authsidecar_nope"}`:                                                                 {"authsidecar_nope"},
	} {
		got, err := unknownMetrics(expr, exp)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("unknownMetrics(%s) = %v, %v; want %v", expr, got, err, want)
		}
	}
	if _, err := unknownMetrics(`sum(rate(authsidecar_requests_total[5m])`, exp); err == nil {
		t.Errorf("unbalanced parenthesis parsed without error")
	}
	for expr, want := range map[string][]string{
		`sum(rate(authsidecar_requests_total{route=~".*"}[5m]))`:                           nil,
		`sum(rate(authsidecar_requests_total{pod="p"}[5m]))`:                               {"authsidecar_requests_total"},
		`go_goroutines and on (pod) authsidecar_token_expiry_timestamp_seconds{route="a"}`: nil,
	} {
		if got, err := unfiltered(expr, "route"); err != nil || !slices.Equal(got, want) {
			t.Errorf("unfiltered(%s, route) = %v, %v; want %v", expr, got, err, want)
		}
	}
	if got := expandGrafana(`rate(x{namespace=~"$namespace",pod=~"${pod}",route=~"$route"}[$__rate_interval])`); got != `rate(x{namespace=~".*",pod=~".*",route=~".*"}[5m])` {
		t.Errorf("expandGrafana = %s", got)
	}
}
