package secret

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	secretsv1 "github.com/ozsecrets/oz/proto/gen/oz/secrets/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

// A list of several pages is printed whole and in the server's order, one
// call per page; the columns are chosen at the first page (TEAM and BOUND
// TO shown, since later pages may bring another team or a bound secret;
// SCOPE as wide as "personal").
func TestListSeveralPages(t *testing.T) {
	secrets := []*secretsv1.Secret{
		teamSecret("acme", "A", testNow), teamSecret("acme", "B", testNow),
		teamSecret("acme", "C", testNow), personalSecret("C", testNow),
		teamSecret("acme", "D_LONGER", testNow),
	}
	got, srv := runListPaged(t, ListOptions{}, false, 2, secrets...)
	ts := testNow.UTC().Format(time.RFC3339)
	want := strings.Join([]string{
		"NAME      SCOPE     TEAM  LAST UPDATED          BOUND TO",
		"A         team      acme  " + ts + "  -",
		"B         team      acme  " + ts + "  -",
		"C         team      acme  " + ts + "  -",
		"C         personal  -     " + ts + "  -",
		"D_LONGER  team      acme  " + ts + "  -",
	}, "\n") + "\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if calls := srv.CallsTo("ListAvailableSecrets"); len(calls) != 3 {
		t.Errorf("got %d ListAvailableSecrets calls, want 3 (one a page)", len(calls))
	}
}

// --output json of several pages is one valid array, in order, complete.
func TestListJSONSeveralPages(t *testing.T) {
	var secrets []*secretsv1.Secret
	for i := range 7 {
		secrets = append(secrets, teamSecret("acme", fmt.Sprintf("S_%02d", i), testNow))
	}
	out, _ := runListPaged(t, ListOptions{Output: cmdutil.FormatJSON}, false, 3, secrets...)
	var items []map[string]any
	if err := json.Unmarshal([]byte(out), &items); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	var got []string
	for _, it := range items {
		got = append(got, it["name"].(string))
	}
	if want := "S_00,S_01,S_02,S_03,S_04,S_05,S_06"; strings.Join(got, ",") != want {
		t.Errorf("got %v, want %s", got, want)
	}
}

// syncBuffer is standard output shared by the command and the fake server:
// it signals once what was written contains want.
type syncBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if b.seen != nil && strings.Contains(b.buf.String(), b.want) {
		close(b.seen)
		b.seen = nil
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The first page's rows are on standard output before the last page is
// asked for: the fake answers the second call only once it sees them.
func TestListPrintsBeforeLastPage(t *testing.T) {
	for _, format := range []cmdutil.Format{cmdutil.FormatTable, cmdutil.FormatJSON} {
		t.Run(string(format), func(t *testing.T) {
			// More rows than a table holds to set its widths.
			var first []*secretsv1.Secret
			for i := range cmdutil.TableHoldRows + 50 {
				first = append(first, teamSecret("acme", fmt.Sprintf("FIRST_%03d", i), testNow))
			}
			lastOfFirst := first[len(first)-1].GetSecretId()
			last := []*secretsv1.Secret{teamSecret("acme", "LAST", testNow)}
			out := &syncBuffer{want: lastOfFirst, seen: make(chan struct{})}
			seen := out.seen
			srv := ozfake.Start(t, &ozfake.Secrets{ListAvailableSecretsFunc: func(ctx context.Context, r *secretsv1.ListAvailableSecretsRequest) (*secretsv1.ListAvailableSecretsResponse, error) {
				if r.GetPageToken() == "" {
					return &secretsv1.ListAvailableSecretsResponse{Secrets: first, NextPageToken: "2"}, nil
				}
				select {
				case <-seen:
				case <-time.After(5 * time.Second):
					return nil, fmt.Errorf("the first page's rows were not printed before the second page was asked for")
				}
				return &secretsv1.ListAvailableSecretsResponse{Secrets: last}, nil
			}}, nil, nil)
			ios, _, _, _ := iostreams.Test()
			ios.Out = out
			opts := &ListOptions{IO: ios, Connect: connectTo(srv), Now: func() time.Time { return testNow }, Output: format}
			if err := runList(context.Background(), opts); err != nil {
				t.Fatalf("runList: %v", err)
			}
			if got := out.String(); !strings.Contains(got, "LAST") {
				t.Errorf("got\n%s\nwant the last page's LAST too", got)
			}
		})
	}
}
