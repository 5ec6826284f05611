package auditchain_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/lib/auditchain"
	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
)

func exportLines(t *testing.T, evs []*auditv1.Event) []string {
	t.Helper()
	var lines []string
	for _, ev := range evs {
		b, err := auditchain.MarshalLine(ev)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Count(b, []byte("\n")) != 1 || b[len(b)-1] != '\n' {
			t.Fatalf("line %q: want exactly one trailing newline", b)
		}
		lines = append(lines, string(b))
	}
	return lines
}

func TestVerifyExport(t *testing.T) {
	evs := build("acme", 8)
	tests := []struct {
		name       string
		edit       func([]string) []string
		wantBreak  int64 // 0: valid
		wantReason string
		wantCount  int64
	}{
		{"Valid", func(l []string) []string { return l }, 0, "", 8},
		{"BlankLinesIgnored", func(l []string) []string { return append([]string{"\n"}, append(l, "\n", "  \n")...) }, 0, "", 8},
		{"ChangedByte", func(l []string) []string {
			l[2] = strings.Replace(l[2], "users/alice", "users/alicf", 1)
			return l
		}, 3, "line 3: hash does not match", 2},
		{"DeletedLine", func(l []string) []string { return append(l[:5:5], l[6:]...) }, 6, "want seq 6", 5},
		{"SwappedLines", func(l []string) []string {
			l[0], l[1] = l[1], l[0]
			return l
		}, 1, "does not start here", 0},
		{"SwappedLaterLines", func(l []string) []string {
			l[4], l[5] = l[5], l[4]
			return l
		}, 5, "out of order", 4},
		{"NotJSON", func(l []string) []string {
			l[3] = "{not json\n"
			return l
		}, 4, "line 4: not an audit event", 3},
		{"UnknownField", func(l []string) []string {
			l[1] = strings.Replace(l[1], "{", `{"extra":"x",`, 1)
			return l
		}, 2, "line 2: not an audit event", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lines := tt.edit(exportLines(t, evs))
			rep, err := auditchain.VerifyExport(strings.NewReader(strings.Join(lines, "")))
			if err != nil {
				t.Fatalf("VerifyExport: %v", err)
			}
			if rep.Verified != tt.wantCount {
				t.Errorf("verified: got %d, want %d", rep.Verified, tt.wantCount)
			}
			if tt.wantBreak == 0 {
				if rep.Break != nil {
					t.Fatalf("got break %v, want none", rep.Break)
				}
				if rep.Chain != "teams/acme" || rep.Head.Seq != 8 || !bytes.Equal(rep.Head.Hash, evs[7].GetHash()) {
					t.Errorf("got chain %q head %v, want teams/acme and the last event", rep.Chain, rep.Head)
				}
				return
			}
			if rep.Break == nil {
				t.Fatalf("got no break, want one at seq %d", tt.wantBreak)
			}
			if rep.Break.Seq != tt.wantBreak || !strings.Contains(rep.Break.Reason, tt.wantReason) {
				t.Errorf("got break %v, want seq %d with %q", rep.Break, tt.wantBreak, tt.wantReason)
			}
		})
	}
}

func TestVerifyExportEmpty(t *testing.T) {
	rep, err := auditchain.VerifyExport(strings.NewReader(""))
	if err != nil || rep.Break != nil || rep.Verified != 0 || rep.Head.Seq != 0 {
		t.Errorf("got %+v, %v; want an empty valid report", rep, err)
	}
}

func TestExportRoundTrip(t *testing.T) {
	ev := build("", 1)[0]
	line := exportLines(t, []*auditv1.Event{ev})[0]
	for _, field := range []string{`"request_id"`, `"append_time"`} {
		if !strings.Contains(line, field) {
			t.Errorf("line %s: want proto field name %s", line, field)
		}
	}
	got, err := auditchain.NewReader(strings.NewReader(line)).Next()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(auditchain.Hash(got), ev.GetHash()) {
		t.Errorf("read back: hash changed")
	}
	rep, err := auditchain.VerifyExport(strings.NewReader(line))
	if err != nil || rep.Break != nil || rep.Chain != auditchain.SystemChain {
		t.Errorf("got %+v, %v; want a valid system chain", rep, err)
	}
}

func FuzzVerifyExport(f *testing.F) {
	evs := build("acme", 3)
	var all []byte
	for _, ev := range evs {
		b, _ := auditchain.MarshalLine(ev)
		all = append(all, b...)
	}
	f.Add(all)
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := auditchain.VerifyExport(bytes.NewReader(data))
		if err != nil {
			return
		}
		if rep.Break == nil && rep.Verified > 0 && rep.Head.Seq != rep.Verified {
			t.Errorf("valid export: head seq %d, verified %d", rep.Head.Seq, rep.Verified)
		}
	})
}
