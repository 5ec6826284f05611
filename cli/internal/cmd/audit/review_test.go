package audit_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/cmd/root"
	"github.com/ozsecrets/oz/cli/internal/config"
	"github.com/ozsecrets/oz/cli/internal/exitcode"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

var reviewNow = time.Date(2026, 5, 20, 15, 0, 0, 0, time.UTC)

func ts(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(reviewNow.Add(-d)) }

const day = 24 * time.Hour

// review is what the fake audit service answers: one row of each kind.
var review = &auditv1.ReviewSecretsResponse{
	ReviewTime: timestamppb.New(reviewNow), StaleDays: 90, UnusedDays: 30,
	Secrets: []*auditv1.SecretReview{
		{Name: "teams/acme/secrets/API_KEY", SecretId: "API_KEY", Scope: secretsv1.Scope_SCOPE_TEAM, ValueVersion: 3,
			CreateTime: ts(200 * day), ValueUpdateTime: ts(2 * time.Hour), InjectionsTracked: true,
			LastInjectTime: ts(day), LastInjectRunId: "run-7", Environments: []string{"teams/acme/environments/ops-tools"}},
		{Name: "teams/acme/secrets/DB_URL", SecretId: "DB_URL", Scope: secretsv1.Scope_SCOPE_TEAM, ValueVersion: 1,
			CreateTime: ts(3 * day), ValueUpdateTime: ts(3 * day), InjectionsTracked: true, LastInjectTime: ts(3 * day), LastInjectRunId: "run-2",
			Agents: []string{"teams/acme/agents/deployer"}, Environments: []string{"teams/acme/environments/ops-tools"},
			Flags: []auditv1.ReviewFlag{auditv1.ReviewFlag_REVIEW_FLAG_RESTRICTED}},
		{Name: "teams/acme/secrets/GHOST", SecretId: "GHOST", Scope: secretsv1.Scope_SCOPE_TEAM,
			Agents: []string{"teams/acme/agents/deployer"}, Flags: []auditv1.ReviewFlag{auditv1.ReviewFlag_REVIEW_FLAG_DANGLING}},
		{Name: "teams/acme/secrets/OLD_KEY", SecretId: "OLD_KEY", Scope: secretsv1.Scope_SCOPE_TEAM, ValueVersion: 1,
			CreateTime: ts(120 * day), ValueUpdateTime: ts(120 * day), InjectionsTracked: true,
			Flags: []auditv1.ReviewFlag{auditv1.ReviewFlag_REVIEW_FLAG_STALE, auditv1.ReviewFlag_REVIEW_FLAG_UNUSED}},
		{Name: "users/alice/secrets/SSH_KEY", SecretId: "SSH_KEY", Scope: secretsv1.Scope_SCOPE_PERSONAL, ValueVersion: 1,
			CreateTime: ts(10 * day), ValueUpdateTime: ts(10 * day)},
	},
}

// ozReview runs oz with args against srv; tty makes standard error a
// terminal.
func ozReview(t *testing.T, srv *ozfake.Server, tty bool, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	s := srv.Settings()
	vars := map[string]string{
		config.EnvConfig: filepath.Join(t.TempDir(), "config.json"),
		config.EnvAddr:   s.Addr, config.EnvCAFile: s.CAFile, config.EnvToken: s.Token,
	}
	ios, _, out, errOut := iostreams.Test()
	ios.StderrTTY = tty
	ios.StdoutTTY = tty
	f := &cmdutil.Factory{
		IO: ios, Prompter: &iostreams.ScriptedPrompter{}, Dial: client.Dial,
		Now:    func() time.Time { return reviewNow },
		Getenv: func(k string) string { return vars[k] },
	}
	code = root.Run(context.Background(), f, "test", append([]string{"oz"}, args...))
	return out.String(), errOut.String(), code
}

func startReview(t *testing.T, answer func(*auditv1.ReviewSecretsRequest) (*auditv1.ReviewSecretsResponse, error)) *ozfake.Server {
	t.Helper()
	return ozfake.StartServices(t, ozfake.Services{
		Directory: &ozfake.Directory{GetCallerFunc: ozfake.Caller("alice", "acme")},
		Audit: &ozfake.Audit{ReviewSecretsFunc: func(_ context.Context, r *auditv1.ReviewSecretsRequest) (*auditv1.ReviewSecretsResponse, error) {
			return answer(r)
		}},
	})
}

func TestReviewTable(t *testing.T) {
	srv := startReview(t, func(*auditv1.ReviewSecretsRequest) (*auditv1.ReviewSecretsResponse, error) { return review, nil })
	stdout, stderr, code := ozReview(t, srv, false, "secret", "review")
	if code != 0 {
		t.Fatalf("exit code %d: %s", code, stderr)
	}
	// A script gets times it can parse: RFC 3339 in UTC.
	want := strings.Join([]string{
		"NAME     SCOPE     VERSION  LAST UPDATED          LAST INJECTED         REFERENCED BY                 FLAGS",
		"API_KEY  team      3        2026-05-20T13:00:00Z  2026-05-19T15:00:00Z  env:ops-tools                 -",
		"DB_URL   team      1        2026-05-17T15:00:00Z  2026-05-17T15:00:00Z  agent:deployer,env:ops-tools  restricted",
		"GHOST    team      -        -                     -                     agent:deployer                dangling",
		"OLD_KEY  team      1        2026-01-20T15:00:00Z  never                 -                             stale,unused",
		"SSH_KEY  personal  1        2026-05-10T15:00:00Z  —                     -                             -",
	}, "\n") + "\n"
	if stdout != want {
		t.Errorf("got\n%s\nwant\n%s", stdout, want)
	}
	if stderr != "" {
		t.Errorf("stderr without a terminal: got %q, want none", stderr)
	}
	calls := srv.CallsTo("ReviewSecrets")
	if len(calls) != 1 {
		t.Fatalf("ReviewSecrets calls: got %d, want 1", len(calls))
	}
	if r := calls[0].Req.(*auditv1.ReviewSecretsRequest); r.GetParent() != "teams/acme" || r.GetStaleDays() != 90 || r.GetUnusedDays() != 30 {
		t.Errorf("request: got %v, want teams/acme (the only team), 90, 30", r)
	}

	// On a terminal, times relative to now, a summary and what "—" means.
	stdout, stderr, _ = ozReview(t, srv, true, "secret", "review")
	want = strings.Join([]string{
		"NAME     SCOPE     VERSION  LAST UPDATED  LAST INJECTED  REFERENCED BY                 FLAGS",
		"API_KEY  team      3        1:00pm        yesterday      env:ops-tools                 -",
		"DB_URL   team      1        3 days ago    3 days ago     agent:deployer,env:ops-tools  restricted",
		"GHOST    team      -        -             -              agent:deployer                dangling",
		"OLD_KEY  team      1        4 months ago  never          -                             stale,unused",
		"SSH_KEY  personal  1        1 week ago    —              -                             -",
	}, "\n") + "\n"
	if stdout != want {
		t.Errorf("on a terminal: got\n%s\nwant\n%s", stdout, want)
	}
	for _, want := range []string{"acme: 1 stale (value unchanged for 90 days), 1 unused (no run for 30 days), 1 dangling, 1 restricted", "—: not recorded"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr on a terminal: want %q in\n%s", want, stderr)
		}
	}
}

func TestReviewJSON(t *testing.T) {
	srv := startReview(t, func(*auditv1.ReviewSecretsRequest) (*auditv1.ReviewSecretsResponse, error) { return review, nil })
	stdout, stderr, code := ozReview(t, srv, true, "secret", "review", "--team", "beta", "--stale-days", "7", "--unused-days", "3", "-o", "json")
	if code != 0 {
		t.Fatalf("exit code %d: %s", code, stderr)
	}
	if r := srv.CallsTo("ReviewSecrets")[0].Req.(*auditv1.ReviewSecretsRequest); r.GetParent() != "teams/beta" || r.GetStaleDays() != 7 || r.GetUnusedDays() != 3 {
		t.Errorf("request: got %v", r)
	}
	var got struct {
		Team       string `json:"team"`
		ReviewTime string `json:"review_time"`
		StaleDays  int    `json:"stale_days"`
		Secrets    []struct {
			Name              string   `json:"name"`
			Scope             string   `json:"scope"`
			ResourceName      string   `json:"resource_name"`
			ValueVersion      int64    `json:"value_version"`
			ValueUpdatedAt    string   `json:"value_updated_at"`
			InjectionsTracked bool     `json:"injections_tracked"`
			LastInjectedAt    string   `json:"last_injected_at"`
			LastInjectedRun   string   `json:"last_injected_run"`
			Agents            []string `json:"agents"`
			Environments      []string `json:"environments"`
			Flags             []string `json:"flags"`
		} `json:"secrets"`
	}
	if err := json.Unmarshal([]byte(stdout), &got); err != nil {
		t.Fatalf("%v in %s", err, stdout)
	}
	if got.Team != "beta" || got.ReviewTime != "2026-05-20T15:00:00Z" || got.StaleDays != 90 || len(got.Secrets) != 5 {
		t.Fatalf("got %+v", got)
	}
	api, db, ssh := got.Secrets[0], got.Secrets[1], got.Secrets[4]
	if api.Name != "API_KEY" || api.Scope != "team" || api.ResourceName != "teams/acme/secrets/API_KEY" || api.ValueVersion != 3 ||
		!api.InjectionsTracked || api.LastInjectedAt != "2026-05-19T15:00:00Z" || api.LastInjectedRun != "run-7" ||
		len(api.Agents) != 0 || api.Agents == nil || len(api.Environments) != 1 || api.Environments[0] != "ops-tools" || api.Flags == nil {
		t.Errorf("API_KEY: got %+v", api)
	}
	if len(db.Agents) != 1 || db.Agents[0] != "deployer" || len(db.Flags) != 1 || db.Flags[0] != "restricted" {
		t.Errorf("DB_URL: got %+v", db)
	}
	if ssh.Scope != "personal" || ssh.InjectionsTracked || ssh.LastInjectedAt != "" {
		t.Errorf("SSH_KEY: got %+v", ssh)
	}
}

func TestReviewErrors(t *testing.T) {
	srv := startReview(t, func(*auditv1.ReviewSecretsRequest) (*auditv1.ReviewSecretsResponse, error) {
		return nil, status.Error(codes.PermissionDenied, "only admins of team acme review its secrets")
	})
	_, stderr, code := ozReview(t, srv, false, "secret", "review")
	if code != exitcode.Denied || !strings.Contains(stderr, "only admins") {
		t.Errorf("refused: got exit code %d, %q; want %d", code, stderr, exitcode.Denied)
	}
	for _, args := range [][]string{
		{"--stale-days", "0"},
		{"--unused-days", "-1"},
		{"--unused-days", "36501"},
		{"--output", "yaml"},
		{"EXTRA"},
	} {
		before := len(srv.CallsTo("ReviewSecrets"))
		_, stderr, code := ozReview(t, srv, false, append([]string{"secret", "review"}, args...)...)
		if code != exitcode.Usage {
			t.Errorf("%v: got exit code %d (%s), want %d", args, code, stderr, exitcode.Usage)
		}
		if len(srv.CallsTo("ReviewSecrets")) != before {
			t.Errorf("%v: the service was called", args)
		}
	}

	empty := startReview(t, func(*auditv1.ReviewSecretsRequest) (*auditv1.ReviewSecretsResponse, error) {
		return &auditv1.ReviewSecretsResponse{StaleDays: 90, UnusedDays: 30}, nil
	})
	stdout, stderr, code := ozReview(t, empty, true, "secret", "review")
	if code != 0 || stdout != "" || !strings.Contains(stderr, "no secrets") {
		t.Errorf("empty: got %d, %q, %q", code, stdout, stderr)
	}
	stdout, _, _ = ozReview(t, empty, false, "secret", "review", "-o", "json")
	if !strings.Contains(stdout, `"secrets": []`) {
		t.Errorf("empty JSON: got %s, want an empty list", stdout)
	}
}
