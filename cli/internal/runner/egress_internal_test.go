package runner

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/cli/internal/egress"
	"github.com/ozsecrets/oz/lib/hostbind"
)

// TestEgressCounts: the most active hosts first, at most MaxEgressHosts,
// and no host the resolver would refuse (which would lose the run's end).
func TestEgressCounts(t *testing.T) {
	stats := map[string]egress.HostStats{
		"api.example.com":        {Substitutions: 500},
		"::1":                    {Denials: 400},
		"bad host\n.com":         {Denials: 1000},
		strings.Repeat("a", 254): {Denials: 1000},
		"UPPER.example.com":      {Denials: 1000},
	}
	for i := range 150 {
		stats[fmt.Sprintf("h%d.example.com", i)] = egress.HostStats{Denials: 1 + i%3}
	}
	got := egressCounts(stats)
	if len(got) != MaxEgressHosts {
		t.Fatalf("%d counts, want %d", len(got), MaxEgressHosts)
	}
	if got[0].GetHost() != "api.example.com" || got[1].GetHost() != "::1" {
		t.Errorf("first hosts %s, %s; want the most active", got[0].GetHost(), got[1].GetHost())
	}
	for _, c := range got {
		if !hostbind.IsRequestHost(c.GetHost()) || strings.Contains(c.GetHost(), "UPPER") {
			t.Errorf("reported host %q, which the resolver refuses", c.GetHost())
		}
	}
	if last := got[len(got)-1]; last.GetDenials() < 2 {
		t.Errorf("kept a host with %d denials over one with more", last.GetDenials())
	}
}

// TestCleanReason: reasons fit the audit's rule whatever the agent sent.
func TestCleanReason(t *testing.T) {
	r := cleanReason("Host \"x\x00\x1b[31m\" differs " + strings.Repeat("é", 300))
	if strings.ContainsAny(r, "\x00\x1b") || len([]rune(r)) != maxReasonLen {
		t.Errorf("cleanReason = %q (%d runes)", r, len([]rune(r)))
	}
}
