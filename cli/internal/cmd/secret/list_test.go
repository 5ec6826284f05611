package secret

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

var (
	testZone = time.FixedZone("test", 2*3600)
	testNow  = time.Date(2026, time.May, 20, 15, 0, 0, 0, testZone)
)

func teamSecret(team, name string, updated time.Time) *secretsv1.Secret {
	return &secretsv1.Secret{
		Name: "teams/" + team + "/secrets/" + name, SecretId: name, Scope: secretsv1.Scope_SCOPE_TEAM,
		Owner: "teams/" + team, ValueVersion: 2, Description: "desc " + name,
		CreateTime: timestamppb.New(updated.Add(-time.Hour)), UpdateTime: timestamppb.New(updated),
		CreateBy: "users/alice", UpdateBy: "users/bob", Etag: "e1",
	}
}

func personalSecret(name string, updated time.Time) *secretsv1.Secret {
	return &secretsv1.Secret{
		Name: "users/alice/secrets/" + name, SecretId: name, Scope: secretsv1.Scope_SCOPE_PERSONAL,
		Owner: "users/alice", ValueVersion: 1,
		CreateTime: timestamppb.New(updated), UpdateTime: timestamppb.New(updated),
	}
}

// pagedList serves secrets in the order given, at most per a page (and at
// most the page size asked for), with the index of the next one as token.
func pagedList(per int, secrets ...*secretsv1.Secret) func(context.Context, *secretsv1.ListAvailableSecretsRequest) (*secretsv1.ListAvailableSecretsResponse, error) {
	return func(_ context.Context, r *secretsv1.ListAvailableSecretsRequest) (*secretsv1.ListAvailableSecretsResponse, error) {
		start := 0
		if r.GetPageToken() != "" {
			var err error
			if start, err = strconv.Atoi(r.GetPageToken()); err != nil {
				return nil, err
			}
		}
		n := per
		if r.GetPageSize() > 0 {
			n = min(n, int(r.GetPageSize()))
		}
		end := min(start+n, len(secrets))
		resp := &secretsv1.ListAvailableSecretsResponse{Secrets: secrets[start:end]}
		if end < len(secrets) {
			resp.NextPageToken = strconv.Itoa(end)
		}
		return resp, nil
	}
}

// runListTest runs `oz secret list` on a terminal against a server that
// holds secrets (in the server's order) and answers in pages of 1000.
func runListTest(t *testing.T, opts ListOptions, secrets ...*secretsv1.Secret) (stdout string, srv *ozfake.Server) {
	t.Helper()
	return runListTTY(t, opts, true, secrets...)
}

// runListTTY is runListTest with standard output a terminal or not.
func runListTTY(t *testing.T, opts ListOptions, tty bool, secrets ...*secretsv1.Secret) (stdout string, srv *ozfake.Server) {
	t.Helper()
	return runListPaged(t, opts, tty, 1000, secrets...)
}

// runListPaged is runListTTY with pages of per secrets.
func runListPaged(t *testing.T, opts ListOptions, tty bool, per int, secrets ...*secretsv1.Secret) (stdout string, srv *ozfake.Server) {
	t.Helper()
	var personal []*secretsv1.Secret
	for _, s := range secrets {
		if s.GetScope() == secretsv1.Scope_SCOPE_PERSONAL {
			personal = append(personal, s)
		}
	}
	listPersonal := pagedList(per, personal...)
	srv = ozfake.Start(t, &ozfake.Secrets{
		ListAvailableSecretsFunc: pagedList(per, secrets...),
		ListSecretsFunc: func(ctx context.Context, r *secretsv1.ListSecretsRequest) (*secretsv1.ListSecretsResponse, error) {
			if r.GetParent() != "users/me" {
				return nil, fmt.Errorf("parent %q, want users/me", r.GetParent())
			}
			resp, err := listPersonal(ctx, &secretsv1.ListAvailableSecretsRequest{PageSize: r.GetPageSize(), PageToken: r.GetPageToken()})
			return &secretsv1.ListSecretsResponse{Secrets: resp.GetSecrets(), NextPageToken: resp.GetNextPageToken()}, err
		},
	}, nil, nil)
	ios, _, out, _ := iostreams.Test()
	ios.StdoutTTY = tty
	opts.IO, opts.Connect, opts.Now = ios, connectTo(srv), func() time.Time { return testNow }
	if err := runList(context.Background(), &opts); err != nil {
		t.Fatalf("runList: %v", err)
	}
	return out.String(), srv
}

// Off a terminal (a script, a pipe), times are absolute, in UTC.
func TestListTableOffTerminal(t *testing.T) {
	got, _ := runListTTY(t, ListOptions{Output: cmdutil.FormatTable}, false,
		teamSecret("acme", "API_KEY", time.Date(2026, time.May, 20, 10, 0, 0, 0, testZone)))
	if !strings.Contains(got, "API_KEY") || !strings.Contains(got, time.Date(2026, time.May, 20, 10, 0, 0, 0, testZone).UTC().Format(time.RFC3339)) {
		t.Errorf("got table\n%s\nwant the time in RFC 3339, UTC", got)
	}
}

func TestListTable(t *testing.T) {
	at := func(daysAgo, hour, minute int) time.Time {
		return time.Date(2026, time.May, 20-daysAgo, hour, minute, 0, 0, testZone)
	}
	got, srv := runListTest(t, ListOptions{Output: cmdutil.FormatTable},
		// In the server's order: the CLI prints as it reads.
		personalSecret("ANCIENT", at(800, 12, 0)),
		teamSecret("acme", "AWS_KEY", at(7, 12, 0)),
		teamSecret("acme", "DB_PASSWORD", at(3, 12, 0)),
		personalSecret("GITHUB_TOKEN", at(1, 9, 0)),
		teamSecret("acme", "MONTHS", at(65, 12, 0)),
		teamSecret("acme", "OLD_KEY", at(15, 12, 0)),
		teamSecret("acme", "OPENAI_API_KEY", at(0, 10, 0)),
		// Stored in UTC, shown in the clock's zone: 08:30 UTC is 10:30am.
		&secretsv1.Secret{Name: "teams/acme/secrets/UTC_KEY", SecretId: "UTC_KEY", Scope: secretsv1.Scope_SCOPE_TEAM, Owner: "teams/acme",
			UpdateTime: timestamppb.New(time.Date(2026, time.May, 20, 8, 30, 0, 0, time.UTC))},
	)
	want := strings.Join([]string{
		"NAME            SCOPE     LAST UPDATED",
		"ANCIENT         personal  2 years ago",
		"AWS_KEY         team      1 week ago",
		"DB_PASSWORD     team      3 days ago",
		"GITHUB_TOKEN    personal  yesterday",
		"MONTHS          team      2 months ago",
		"OLD_KEY         team      2 weeks ago",
		"OPENAI_API_KEY  team      10:00am",
		"UTC_KEY         team      10:30am",
	}, "\n") + "\n"
	if got != want {
		t.Errorf("got table\n%s\nwant\n%s", got, want)
	}
	if calls := srv.CallsTo("ListAvailableSecrets"); len(calls) != 1 {
		t.Errorf("got %d ListAvailableSecrets calls, want 1 (one page of 1000)", len(calls))
	}
}

func TestListTableSeveralTeams(t *testing.T) {
	got, _ := runListTest(t, ListOptions{},
		teamSecret("acme", "API_KEY", testNow),
		teamSecret("beta", "API_KEY", testNow),
		personalSecret("API_KEY", testNow),
	)
	want := strings.Join([]string{
		"NAME     SCOPE     TEAM  LAST UPDATED",
		"API_KEY  team      acme  3:00pm",
		"API_KEY  team      beta  3:00pm",
		"API_KEY  personal  -     3:00pm",
	}, "\n") + "\n"
	if got != want {
		t.Errorf("got table\n%s\nwant\n%s", got, want)
	}
}

func TestListFilters(t *testing.T) {
	secrets := []*secretsv1.Secret{personalSecret("P", testNow), teamSecret("acme", "T", testNow)}
	tests := []struct {
		name string
		opts ListOptions
		want []string
	}{
		{"All", ListOptions{}, []string{"P", "T"}},
		{"Team", ListOptions{Team: true}, []string{"T"}},
		{"Personal", ListOptions{Personal: true}, []string{"P"}},
		{"Both", ListOptions{Team: true, Personal: true}, []string{"P", "T"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.Output = cmdutil.FormatJSON
			out, srv := runListTest(t, tt.opts, secrets...)
			// --personal alone reads only the caller's own secrets.
			wantMine := tt.opts.Personal && !tt.opts.Team
			if got := len(srv.CallsTo("ListSecrets")) == 1 && len(srv.CallsTo("ListAvailableSecrets")) == 0; got != wantMine {
				t.Errorf("listed only users/me: got %v, want %v", got, wantMine)
			}
			var items []map[string]any
			if err := json.Unmarshal([]byte(out), &items); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, it := range items {
				got = append(got, it["name"].(string))
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestListJSON(t *testing.T) {
	updated := time.Date(2026, time.May, 19, 8, 0, 0, 0, time.UTC)
	out, _ := runListTest(t, ListOptions{Output: cmdutil.FormatJSON},
		teamSecret("acme", "API_KEY", updated),
		personalSecret("MINE", updated),
	)
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if len(got) != 2 {
		t.Fatalf("got %d items, want 2", len(got))
	}
	wantTeam := map[string]any{
		"name":          "API_KEY",
		"scope":         "team",
		"team":          "acme",
		"owner":         "teams/acme",
		"resource_name": "teams/acme/secrets/API_KEY",
		"description":   "desc API_KEY",
		"value_version": float64(2),
		"created_at":    "2026-05-19T07:00:00Z",
		"updated_at":    "2026-05-19T08:00:00Z",
		"created_by":    "users/alice",
		"updated_by":    "users/bob",
		"etag":          "e1",
	}
	for k, want := range wantTeam {
		if got[0][k] != want {
			t.Errorf("team secret %s: got %v, want %v", k, got[0][k], want)
		}
	}
	if got[1]["scope"] != "personal" {
		t.Errorf("personal secret scope: got %v, want personal", got[1]["scope"])
	}
	if _, ok := got[1]["team"]; ok {
		t.Errorf("personal secret: got team %v, want no team", got[1]["team"])
	}
}

func TestListEmptyJSON(t *testing.T) {
	out, _ := runListTest(t, ListOptions{Output: cmdutil.FormatJSON})
	if got, want := strings.TrimSpace(out), "[]"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
