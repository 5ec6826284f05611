package egress_test

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"

	"github.com/ozsecrets/oz/cli/internal/egress"
	"github.com/ozsecrets/oz/lib/hostbind"
)

// refMatch is the documented rule computed another way, on label lists:
// an exact pattern matches the same labels; "*.suffix" matches one or
// more labels followed by suffix's labels; case is ignored; IP literals
// and names ending in a dot match nothing.
func refMatch(pattern, host string) bool {
	if _, err := netip.ParseAddr(host); err == nil || strings.HasSuffix(host, ".") || host == "" {
		return false
	}
	pl := strings.Split(strings.ToLower(pattern), ".")
	hl := strings.Split(strings.ToLower(host), ".")
	if pl[0] != "*" {
		return slices.Equal(pl, hl)
	}
	suffix := pl[1:]
	return len(hl) > len(suffix) && slices.Equal(hl[len(hl)-len(suffix):], suffix)
}

func randCase(t *rapid.T, s, label string) string {
	b := []byte(s)
	for i := range b {
		if 'a' <= b[i] && b[i] <= 'z' && rapid.Bool().Draw(t, label) {
			b[i] -= 'a' - 'A'
		}
	}
	return string(b)
}

// A few labels, so patterns and hosts often share suffixes.
var labelGen = rapid.SampledFrom([]string{"api", "a", "b", "example", "test", "evil", "com", "x-1"})

func nameGen(minLabels int) *rapid.Generator[string] {
	return rapid.Custom(func(t *rapid.T) string {
		return strings.Join(rapid.SliceOfN(labelGen, minLabels, 4).Draw(t, "labels"), ".")
	})
}

func TestPropertyMatchHost(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		pattern := nameGen(2).Draw(t, "name")
		if rapid.Bool().Draw(t, "wild") {
			pattern = "*." + pattern
		}
		var host string
		switch rapid.IntRange(0, 5).Draw(t, "hostKind") {
		case 0: // the pattern's own suffix, or longer
			host = strings.TrimPrefix(pattern, "*.")
			if rapid.Bool().Draw(t, "prepend") {
				host = nameGen(1).Draw(t, "prefix") + "." + host
			}
		case 1:
			host = rapid.SampledFrom([]string{"127.0.0.1", "::1", "10.1.2.3", "[::1]"}).Draw(t, "ip")
		case 2:
			host = strings.TrimPrefix(pattern, "*.") + "."
		default:
			host = nameGen(1).Draw(t, "host")
		}
		host = randCase(t, host, "upper")
		if got, want := hostbind.Match(pattern, host), refMatch(pattern, host); got != want {
			t.Fatalf("hostbind.Match(%q, %q) = %t, want %t", pattern, host, got, want)
		}
	})
}

// TestPropertyEndToEnd: for random bindings and a random host, a request
// carrying a binding's placeholder in a header is substituted exactly when
// the host matches one of that binding's patterns, and refused otherwise.
func TestPropertyEndToEnd(t *testing.T) {
	up := newUpstream(t)
	patterns := []string{"api.example.test", "*.example.test", "*.metabase.example.test",
		"metabase.example.test", "other.example.test", "evil.test", "*.evil.test", "example.test"}
	matched, refused := 0, 0
	t.Cleanup(func() {
		t.Logf("substituted %d, refused %d", matched, refused)
		if matched == 0 || refused == 0 {
			t.Errorf("the generator reached one outcome only: substituted %d, refused %d", matched, refused)
		}
	})
	rapid.Check(t, func(rt *rapid.T) {
		n := rapid.IntRange(1, 3).Draw(rt, "bindings")
		var bs []egress.Binding
		for i := range n {
			bs = append(bs, egress.Binding{
				Name:        "S" + string(rune('A'+i)),
				Placeholder: egress.NewPlaceholder(),
				Value:       []byte("value-" + string(rune('A'+i)) + "-0123456789"),
				Hosts:       rapid.SliceOfNDistinct(rapid.SampledFrom(patterns), 1, 3, func(s string) string { return s }).Draw(rt, "hosts"),
			})
		}
		p, err := egress.New(egress.Config{Bindings: bs, RootCAs: up.roots, DialContext: up.dial})
		if err != nil {
			rt.Fatalf("New: %v", err)
		}
		if err := p.Start(); err != nil {
			rt.Fatal(err)
		}
		defer p.Close()
		e := &env{up: up, proxy: p}

		b := bs[rapid.IntRange(0, n-1).Draw(rt, "which")]
		host := randCase(rt, rapid.SampledFrom(upstreamNames).Draw(rt, "host"), "upper")
		want := slices.ContainsFunc(b.Hosts, func(p string) bool { return refMatch(p, host) })

		before := up.count()
		req, _ := http.NewRequest("GET", "https://"+host+"/", nil)
		req.Header.Set("X-Api-Key", b.Placeholder)
		resp, err := e.client().Do(req)
		if err != nil {
			rt.Fatalf("request: %v", err)
		}
		resp.Body.Close()
		if want {
			matched++
		} else {
			refused++
		}
		switch {
		case want && resp.StatusCode != 200:
			rt.Fatalf("host %q, patterns %q: status %d, want 200", host, b.Hosts, resp.StatusCode)
		case !want && resp.StatusCode != 403:
			rt.Fatalf("host %q, patterns %q: status %d, want 403", host, b.Hosts, resp.StatusCode)
		case !want && up.count() != before:
			rt.Fatalf("host %q, patterns %q: refused, yet upstream received it", host, b.Hosts)
		case want:
			up.mu.Lock()
			got := up.reqs[len(up.reqs)-1].Header.Get("X-Api-Key")
			up.mu.Unlock()
			if got != string(b.Value) {
				rt.Fatalf("upstream X-Api-Key = %q, want the value", got)
			}
		}
	})
}
