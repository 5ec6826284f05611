package audit

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
)

// A slow export shows a progress line on a terminal's standard error,
// erased before the summary; off a terminal (every other test) nothing.
func TestExportProgressOnTerminal(t *testing.T) {
	evs := buildChain(6)
	pages := exportPages(evs)
	slow := func(r *auditv1.ExportEventsRequest) (*auditv1.ExportEventsResponse, error) {
		time.Sleep(200 * time.Millisecond) // three pages: past a redraw or two
		return pages(r)
	}
	d, _, errOut := serve(t, &fakeAudit{teams: []string{"acme"}, export: slow})
	d.IO.StderrTTY = true
	file := filepath.Join(t.TempDir(), "export.jsonl")
	if err := runExport(context.Background(), &ExportOptions{Deps: d, OutputFile: file}); err != nil {
		t.Fatal(err)
	}
	got := errOut.String()
	if !strings.Contains(got, "\r\x1b[Kexporting teams/acme: ") || !strings.Contains(got, " events (") {
		t.Errorf("stderr %q: want a progress line counting events", got)
	}
	// The summary starts on an erased line.
	if !strings.Contains(got, "\r\x1b[KExported 6 events of teams/acme to "+file) {
		t.Errorf("stderr %q: want the progress line erased before the summary", got)
	}
}
