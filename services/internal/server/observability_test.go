package server_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/yaml"

	internalapiv1 "github.com/ozsecrets/oz/proto/gen/oz/internalapi/v1"
	"github.com/ozsecrets/oz/services/audit"
	"github.com/ozsecrets/oz/services/internal/outbox"
	"github.com/ozsecrets/oz/services/internal/server"
	"github.com/ozsecrets/oz/services/internal/storemetrics"
	"github.com/ozsecrets/oz/services/resolver/grpcapi"
)

// The operator's files in deploy/observability must name only metrics the
// services register: a renamed metric would leave an alert that never
// fires. The gateway's own (oz_gateway_*) are checked in gateway/edge.
const observabilityDir = "../../../deploy/observability"

// nameRecorder is a Registerer that keeps the names of the metrics registered
// with it, from their descriptions: a vector with no series yet is named
// too, which a scrape would not show.
type nameRecorder struct{ names map[string]bool }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *nameRecorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	return nil
}

func (r *nameRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *nameRecorder) Unregister(prometheus.Collector) bool { return false }

// registered returns the names of the metrics the services register, made
// by the same constructors the daemons call.
func registered(t *testing.T) map[string]bool {
	t.Helper()
	rec := &nameRecorder{names: map[string]bool{}}
	server.New(server.Config{Name: "resolver", Logger: slog.New(slog.DiscardHandler), Metrics: rec})
	storemetrics.New(rec, "secretstore", "bolt")
	// New only registers; the source and the client are never called.
	outbox.New(outbox.Config{Emitter: "resolver", Registerer: rec,
		Source: struct{ outbox.Source }{}, Client: internalapiv1.NewAuditIngestServiceClient(nil)})
	grpcapi.RunMetrics(rec)
	audit.NewService(audit.Config{Registerer: rec})
	// Made by Prometheus itself for every target.
	rec.names["up"] = true
	for _, want := range []string{"grpc_server_handled_total", "oz_store_operation_duration_seconds", "oz_audit_outbox_backlog"} {
		if !rec.names[want] {
			t.Fatalf("the services do not register %s (registered: %v)", want, rec.names)
		}
	}
	return rec.names
}

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

type dashboard struct {
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []struct {
		Title      string `json:"title"`
		Datasource struct {
			Type string `json:"type"`
			UID  string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestObservabilityFiles checks the alert rules and the dashboard: their
// shape, that each expression is well formed (see checkExpr: a simple
// check, not PromQL's parser, which would bring Prometheus itself into
// the module), and that every metric they name is registered.
func TestObservabilityFiles(t *testing.T) {
	names := registered(t)
	known := func(n string) bool {
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			if base, ok := strings.CutSuffix(n, suffix); ok && names[base] {
				return true
			}
		}
		return names[n]
	}
	type query struct{ where, expr string }
	var exprs []query

	b, err := os.ReadFile(filepath.Join(observabilityDir, "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rules ruleFile
	if err := yaml.UnmarshalStrict(b, &rules); err != nil {
		t.Fatalf("alerts.yaml: %v", err)
	}
	seen := map[string]bool{}
	for _, g := range rules.Groups {
		if g.Name == "" || len(g.Rules) == 0 {
			t.Errorf("alerts.yaml: group %q: want a name and rules", g.Name)
		}
		for _, r := range g.Rules {
			switch {
			case r.Alert == "" || seen[r.Alert]:
				t.Errorf("alerts.yaml: group %s: alert name %q empty or repeated", g.Name, r.Alert)
			case !slices.Contains([]string{"warning", "critical"}, r.Labels["severity"]):
				t.Errorf("alerts.yaml: %s: severity %q, want warning or critical", r.Alert, r.Labels["severity"])
			case r.Annotations["summary"] == "":
				t.Errorf("alerts.yaml: %s: no summary", r.Alert)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("alerts.yaml: %s: for %q: %v", r.Alert, r.For, err)
				}
			}
			seen[r.Alert] = true
			exprs = append(exprs, query{"alerts.yaml " + r.Alert, r.Expr})
		}
	}
	if len(seen) < 5 {
		t.Errorf("alerts.yaml: %d alerts, want the operator's set", len(seen))
	}

	b, err = os.ReadFile(filepath.Join(observabilityDir, "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash dashboard
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana-dashboard.json: %v", err)
	}
	if !slices.ContainsFunc(dash.Templating.List, func(v struct {
		Name  string `json:"name"`
		Type  string `json:"type"`
		Query any    `json:"query"`
	}) bool {
		return v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus"
	}) {
		t.Error("grafana-dashboard.json: no Prometheus datasource variable named datasource")
	}
	for _, p := range dash.Panels {
		if p.Datasource.Type != "prometheus" || p.Datasource.UID != "${datasource}" || len(p.Targets) == 0 {
			t.Errorf("grafana-dashboard.json: panel %q: datasource %+v, %d targets; want ${datasource} and queries", p.Title, p.Datasource, len(p.Targets))
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, query{"dashboard panel " + p.Title, tg.Expr})
		}
	}

	used := map[string]bool{}
	for _, q := range exprs {
		where, expr := q.where, q.expr
		metrics, err := checkExpr(expr)
		if err != nil {
			t.Errorf("%s: %v in %s", where, err, expr)
		}
		if len(metrics) == 0 {
			t.Errorf("%s: names no metric: %s", where, expr)
		}
		for _, m := range metrics {
			used[m] = true
			if strings.HasPrefix(m, "oz_gateway_") {
				continue // the gateway's, checked in gateway/edge
			}
			if !known(m) {
				t.Errorf("%s: metric %s is not one the services register", where, m)
			}
		}
	}
	for _, want := range []string{"oz_audit_outbox_backlog", "oz_store_operation_duration_seconds_bucket", "oz_run_resolutions_total", "grpc_server_handled_total"} {
		if !used[want] {
			t.Errorf("the files never use %s", want)
		}
	}
}

var (
	exprString   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	exprMatchers = regexp.MustCompile(`\{[^{}]*\}`)
	exprRange    = regexp.MustCompile(`\[[^\[\]]*\]`)
	exprGrouping = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	exprIdent    = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*(\s*\()?`)
	exprKeywords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}
)

// checkExpr is a small well-formedness check of a PromQL expression:
// strings closed, brackets balanced and nested, an operand on each side of
// a binary operator is not checked. It returns the metric names the
// expression selects: identifiers outside strings, label matchers, ranges
// and grouping clauses that are not called as functions.
func checkExpr(expr string) ([]string, error) {
	if strings.Count(expr, `"`)%2 != 0 {
		return nil, errors.New("unclosed string")
	}
	rest := exprString.ReplaceAllString(expr, `""`)
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	for _, c := range rest {
		switch c {
		case '(', '[', '{':
			stack = append(stack, c)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[c] {
				return nil, fmt.Errorf("unbalanced %q", c)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		return nil, fmt.Errorf("unclosed %q", stack[len(stack)-1])
	}
	rest = exprMatchers.ReplaceAllString(rest, " ")
	rest = exprRange.ReplaceAllString(rest, " ")
	rest = exprGrouping.ReplaceAllString(rest, " ")
	var names []string
	for _, m := range exprIdent.FindAllStringSubmatch(rest, -1) {
		if m[1] != "" || slices.Contains(exprKeywords, strings.ToLower(m[0])) {
			continue // a function or an aggregation, or a keyword
		}
		names = append(names, m[0])
	}
	return names, nil
}

func TestCheckExpr(t *testing.T) {
	for _, tt := range []struct {
		expr    string
		want    []string
		wantErr string
	}{
		{`sum by (grpc_code) (rate(grpc_server_handled_total{grpc_code=~"A|B"}[5m])) > 0`, []string{"grpc_server_handled_total"}, ""},
		{`histogram_quantile(0.99, sum by (le) (rate(x_bucket{a="}"}[$__rate_interval])))`, []string{"x_bucket"}, ""},
		{`a / on(instance) group_left b and c unless d`, []string{"a", "b", "c", "d"}, ""},
		{`rate(x[5m]`, nil, "unclosed"},
		{`rate(x{a="b")[5m]`, nil, "unbalanced"},
		{`x{a="b}`, nil, "unclosed string"},
	} {
		got, err := checkExpr(tt.expr)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("checkExpr(%s): got %v, want an error containing %q", tt.expr, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("checkExpr(%s): got %v, %v; want %v", tt.expr, got, err, tt.want)
		}
	}
}
