package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ozsecrets/oz/cli/internal/testutil/signalout"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"

	"github.com/ozsecrets/oz/cli/internal/cmd/cmdutil"
)

// `oz audit list --limit 0` prints the events of every page, newest
// first, and the first page's before it asks for the second: the fake
// answers the second call only once it sees the first page's last event
// on standard output.
func TestListStreamsPages(t *testing.T) {
	evs := buildChain(2*cmdutil.TableHoldRows + 10)
	per := cmdutil.TableHoldRows + 5 // two pages, each past what a table holds
	for _, format := range []cmdutil.Format{cmdutil.FormatTable, cmdutil.FormatJSON} {
		t.Run(string(format), func(t *testing.T) {
			lastOfFirst := evs[len(evs)-per]
			want := lastOfFirst.GetTime().AsTime().UTC().Format(time.RFC3339)
			if format == cmdutil.FormatJSON {
				want = fmt.Sprintf(`"seq": "%d"`, lastOfFirst.GetSeq())
			}
			out := signalout.New(want)
			f := &fakeAudit{teams: []string{"acme"}, list: func(r *auditv1.ListEventsRequest) (*auditv1.ListEventsResponse, error) {
				if r.GetPageToken() == "" {
					page := make([]*auditv1.Event, 0, per)
					for i := len(evs) - 1; i >= len(evs)-per; i-- {
						page = append(page, evs[i])
					}
					return &auditv1.ListEventsResponse{Events: page, NextPageToken: "2"}, nil
				}
				select {
				case <-out.Seen():
				case <-time.After(5 * time.Second):
					return nil, fmt.Errorf("the first page was not printed before the second was asked for")
				}
				page := make([]*auditv1.Event, 0, len(evs)-per)
				for i := len(evs) - per - 1; i >= 0; i-- {
					page = append(page, evs[i])
				}
				return &auditv1.ListEventsResponse{Events: page}, nil
			}}
			d, _, _ := serve(t, f)
			d.IO.Out = out
			if err := runList(context.Background(), &ListOptions{Deps: d, Output: format}); err != nil {
				t.Fatalf("runList: %v", err)
			}
			var n int
			if format == cmdutil.FormatJSON {
				var items []map[string]any
				if err := json.Unmarshal([]byte(out.String()), &items); err != nil {
					t.Fatalf("output is not JSON: %v", err)
				}
				n = len(items)
			} else {
				n = strings.Count(out.String(), "\n") - 1 // the header
			}
			if n != len(evs) {
				t.Errorf("got %d events, want %d", n, len(evs))
			}
		})
	}
}
