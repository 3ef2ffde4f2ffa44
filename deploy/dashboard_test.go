package deploy

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// panel is the part of a Grafana panel the test reads.
type panel struct {
	ID         int     `json:"id"`
	Title      string  `json:"title"`
	Type       string  `json:"type"`
	Datasource any     `json:"datasource"`
	GridPos    gridPos `json:"gridPos"`
	Panels     []panel `json:"panels"` // collapsed rows
	Targets    []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

// gridPos is a panel's place on the dashboard's grid (24 columns wide).
type gridPos struct{ X, Y, W, H int }

type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

// variable is a dashboard variable.
type variable struct {
	Name       string `json:"name"`
	Type       string `json:"type"`
	Query      any    `json:"query"`
	Multi      bool   `json:"multi"`
	IncludeAll bool   `json:"includeAll"`
	AllValue   string `json:"allValue"`
}

var labelValues = regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)

// The dashboard queries only metrics a running authsidecar exports, and
// shows what the issue lists.
func TestDashboard(t *testing.T) {
	raw, err := os.ReadFile("monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard uid %q title %q, want both", d.UID, d.Title)
	}

	exp := exported(t)
	queried := map[string]bool{}
	checkExpr := func(where, expr string) {
		expr = expandGrafana(expr)
		names, err := metricNames(expr)
		if err != nil {
			t.Errorf("%s: %q: %v", where, expr, err)
			return
		}
		for _, n := range names {
			queried[n] = true
			if !exp[n] {
				t.Errorf("%s: queries %s, which authsidecar does not export", where, n)
			}
		}
	}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		checkGrid(t, ps)
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("panel id %d used twice", p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			for _, tg := range p.Targets {
				checkExpr("panel "+p.Title+" "+tg.RefID, tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		q, _ := v.Query.(string)
		if m := labelValues.FindStringSubmatch(q); m != nil {
			checkExpr("variable "+v.Name, m[1])
		}
	}

	// What the issue asks the dashboard to show, by the metric behind it.
	for _, m := range []string{
		"authsidecar_token_expiry_timestamp_seconds",  // token expiry countdown
		"authsidecar_token_fetches_total",             // fetch success and failure
		"authsidecar_token_forced_refreshes_total",    // forced refreshes
		"authsidecar_requests_total",                  // request rate and status codes
		"authsidecar_request_duration_seconds_bucket", // latency percentiles
		"authsidecar_upstream_responses_total",        // upstream status codes
		"authsidecar_shared_cache_lookups_total",      // shared cache hits, misses, fallbacks
		"authsidecar_shared_cache_lock_waits_total",   // shared cache lock waits
	} {
		if !queried[m] {
			t.Errorf("the dashboard does not show %s", m)
		}
	}
	if !slices.ContainsFunc(d.Templating.List, func(v variable) bool { return v.Type == "datasource" }) {
		t.Errorf("no datasource variable: the dashboard would be tied to one Prometheus")
	}

	// A route variable, several routes at once or all of them (pods of
	// sidecars from before the route label included), filters every panel.
	i := slices.IndexFunc(d.Templating.List, func(v variable) bool { return v.Name == "route" })
	if i < 0 {
		t.Fatalf("no route variable")
	}
	route := d.Templating.List[i]
	if q, _ := route.Query.(string); route.Type != "query" || !strings.HasPrefix(q, "label_values(authsidecar_requests_total") || !strings.HasSuffix(q, ", route)") {
		t.Errorf("route variable: type %q query %q, want the label_values of authsidecar_requests_total's route", route.Type, route.Query)
	}
	if !route.Multi || !route.IncludeAll || route.AllValue != ".*" {
		t.Errorf("route variable: multi %v, includeAll %v, allValue %q; want true, true, .*", route.Multi, route.IncludeAll, route.AllValue)
	}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			if !strings.Contains(tg.Expr, `route=~"$route"`) {
				t.Errorf("panel %s %s: not filtered by route=~\"$route\": %s", p.Title, tg.RefID, tg.Expr)
			}
			if names, err := unfiltered(expandGrafana(tg.Expr), "route"); err != nil || len(names) > 0 {
				t.Errorf("panel %s %s: selects %v without a route matcher (%v)", p.Title, tg.RefID, names, err)
			}
		}
	}
}

// allPanels returns ps and the panels of their collapsed rows.
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// checkGrid: every panel lies within the dashboard's 24 columns, and no two
// panels of one level (the dashboard, or a collapsed row) overlap.
func checkGrid(t *testing.T, ps []panel) {
	t.Helper()
	for i, p := range ps {
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for _, q := range ps[:i] {
			h := q.GridPos
			if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
				t.Errorf("panels %q %+v and %q %+v overlap", q.Title, h, p.Title, g)
			}
		}
	}
}
