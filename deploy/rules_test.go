package deploy

import (
	"io"
	"log/slog"
	"slices"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"sigs.k8s.io/yaml"
)

// The alerts the issue asks for, by name.
var wantAlerts = []string{
	"AuthsidecarTokenRenewalFailing",   // token renewal failing
	"AuthsidecarTokenExpiringSoon",     // token expiring within a set margin
	"AuthsidecarNoValidToken",          // no valid token
	"AuthsidecarForcedRefreshesRising", // forced refreshes rising
	"AuthsidecarUpstreamErrors",        // upstream 5xx ratio
	"AuthsidecarServing503",            // sidecar-made 503s
	"AuthsidecarSharedCacheUnusable",   // shared cache fallbacks: Redis unusable
	"AuthsidecarCustomerTokensFailing", // every per-customer token fetch failing
	"AuthsidecarTenantTokensFailing",   // every tenant's token fetch failing
}

func TestAlertRules(t *testing.T) {
	var rules []*monitoringv1.PrometheusRule
	for _, v := range decoded(t, "monitoring") {
		if r, ok := v.(*monitoringv1.PrometheusRule); ok {
			rules = append(rules, r)
		}
	}
	if len(rules) != 1 {
		t.Fatalf("deploy/monitoring renders %d PrometheusRules, want 1", len(rules))
	}
	// What the Operator hands Prometheus: the spec's groups, parsed and
	// validated by Prometheus' own rule parser (expressions, durations,
	// label names, annotation templates).
	groups, err := yaml.Marshal(rules[0].Spec)
	if err != nil {
		t.Fatal(err)
	}
	parsed, errs := rulefmt.Parse(groups, false, model.UTF8Validation, promqlParser, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, err := range errs {
		t.Errorf("rulefmt: %v", err)
	}
	if parsed == nil {
		t.FailNow()
	}

	exp := exported(t)
	var alerts []string
	for _, g := range parsed.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			if unknown, err := unknownMetrics(r.Expr, exp); err != nil || len(unknown) > 0 {
				t.Errorf("%s: queries %v, not exported by authsidecar (%v)", r.Alert, unknown, err)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
			}
			for _, a := range []string{"summary", "description"} {
				if r.Annotations[a] == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
		}
	}
	slices.Sort(alerts)
	want := slices.Sorted(slices.Values(wantAlerts))
	if !slices.Equal(alerts, want) {
		t.Errorf("alerts %v, want %v", alerts, want)
	}
}
