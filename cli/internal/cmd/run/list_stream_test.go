package run

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ozsecrets/oz/cli/internal/testutil/signalout"

	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/client"
	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
	"github.com/ozsecrets/oz/cli/internal/iostreams"
	"github.com/ozsecrets/oz/cli/internal/testutil/ozfake"
)

// `oz run list --limit 0` prints the runs of every page, in order, and the
// first page's before it asks for the last: the fake answers the last call
// only once it sees the first page's last run on standard output.
func TestListStreamsPages(t *testing.T) {
	const pages, per = 3, cmdutil.TableHoldRows + 20 // past what a table holds
	runID := func(i int) string { return fmt.Sprintf("run-%04d", i) }
	for _, format := range []cmdutil.Format{cmdutil.FormatTable, cmdutil.FormatJSON} {
		t.Run(string(format), func(t *testing.T) {
			out := signalout.New(runID(per - 1))
			srv := ozfake.StartServices(t, ozfake.Services{
				Directory: &ozfake.Directory{GetCallerFunc: ozfake.Caller("bob", "acme")},
				Runs: &ozfake.Runs{ListRunsFunc: func(_ context.Context, r *scopev1.ListRunsRequest) (*scopev1.ListRunsResponse, error) {
					page := 0
					if r.GetPageToken() != "" {
						fmt.Sscan(r.GetPageToken(), &page)
					}
					if page == pages-1 {
						select {
						case <-out.Seen():
						case <-time.After(5 * time.Second):
							return nil, fmt.Errorf("the first page was not printed before the last was asked for")
						}
					}
					resp := &scopev1.ListRunsResponse{}
					for i := page * per; i < (page+1)*per; i++ {
						resp.Runs = append(resp.Runs, &scopev1.Run{Name: "teams/acme/runs/" + runID(i), RunId: runID(i), State: scopev1.RunState_RUN_STATE_ENDED})
					}
					if page < pages-1 {
						resp.NextPageToken = fmt.Sprint(page + 1)
					}
					return resp, nil
				}},
			})
			ios, _, _, _ := iostreams.Test()
			ios.Out = out
			opts := &ListOptions{
				TeamDeps: cmdutil.TeamDeps{
					IO: ios, Team: "acme", Now: func() time.Time { return time.Date(2026, 5, 20, 15, 0, 0, 0, time.UTC) },
					Connect: func(context.Context) (*client.Conn, error) { return client.Dial(srv.Settings()) },
				},
				Output: format,
			}
			if err := runList(context.Background(), opts); err != nil {
				t.Fatalf("runList: %v", err)
			}
			var got []string
			if format == cmdutil.FormatJSON {
				var recs []map[string]any
				if err := json.Unmarshal([]byte(out.String()), &recs); err != nil {
					t.Fatalf("output is not JSON: %v", err)
				}
				for _, r := range recs {
					got = append(got, r["id"].(string))
				}
			} else {
				for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")[1:] {
					got = append(got, strings.Fields(line)[0])
				}
			}
			if len(got) != pages*per {
				t.Fatalf("got %d runs, want %d", len(got), pages*per)
			}
			for i, id := range got {
				if id != runID(i) {
					t.Fatalf("run %d: got %s, want %s", i, id, runID(i))
				}
			}
		})
	}
}
