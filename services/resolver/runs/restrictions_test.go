package runs_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ozsecrets/oz/lib/etcdtest"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/kv/etcdkv"
	"github.com/ozsecrets/oz/services/internal/runrules"
	"github.com/ozsecrets/oz/services/resolver"
	"github.com/ozsecrets/oz/services/resolver/directory"
	rsgrpc "github.com/ozsecrets/oz/services/resolver/grpcapi"
	"github.com/ozsecrets/oz/services/resolver/resolvertest"
	"github.com/ozsecrets/oz/services/resolver/runs"
	ssgrpc "github.com/ozsecrets/oz/services/secretstore/grpcapi"
)

// backends are the stores the index is tested on: bbolt and etcd.
func backends(t *testing.T) map[string]func(t *testing.T) kv.Store {
	var once sync.Once
	var cluster *etcdtest.Cluster
	return map[string]func(t *testing.T) kv.Store{
		"Bolt": func(t *testing.T) kv.Store { return resolvertest.Open(t, "") },
		"Etcd": func(t *testing.T) kv.Store {
			once.Do(func() { cluster = etcdtest.Start(t) })
			s, err := etcdkv.Open(context.Background(), cluster.Config(), etcdtest.Prefix())
			check(t, err)
			t.Cleanup(func() { s.Close() })
			return s
		},
	}
}

// indexOf is every restriction entry of team, as "NAME/agent".
func indexOf(t *testing.T, s kv.Store, team string) []string {
	t.Helper()
	kvs, err := s.Scan(context.Background(), resolver.PrefixRestrict+team+"/", "", 0)
	check(t, err)
	var out []string
	for _, e := range kvs {
		out = append(out, strings.TrimPrefix(e.Key, resolver.PrefixRestrict+team+"/"))
	}
	return out
}

// indexWanted is what the index of team must hold: every reference of
// every identity record.
func indexWanted(t *testing.T, s kv.Store, team string) []string {
	t.Helper()
	recs, err := resolver.Scan[resolver.AgentRecord](context.Background(), resolver.NewStore(s, nil), resolver.AgentsPrefix(team), "", 0)
	check(t, err)
	var out []string
	for _, r := range recs {
		for _, n := range r.SecretNames {
			out = append(out, n+"/"+r.ID)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s_%04d", prefix, i)
	}
	return out
}

// TestRestrictionIndexFollowsIdentities: creating, changing and deleting
// identities keeps the index equal to their records, also for changes
// larger than one Apply holds on etcd.
func TestRestrictionIndexFollowsIdentities(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			ctx := context.Background()
			d := directory.New(resolver.NewStore(s, nil))
			_, bearer, err := d.BootstrapAdmin(ctx, "admin")
			check(t, err)
			sys := resolvertest.Login(t, d, bearer)
			_, err = d.CreateTeam(sys, "acme")
			check(t, err)
			svc := runs.New(d, resolvertest.NoSecrets{})
			same := func(step string) {
				t.Helper()
				got, want := indexOf(t, s, "acme"), indexWanted(t, s, "acme")
				if !slices.Equal(got, want) {
					t.Fatalf("%s: index has %d entries %.200v, records call for %d %.200v", step, len(got), got, len(want), want)
				}
			}
			_, err = svc.CreateAgent(sys, runs.Agent{Team: "acme", ID: "bot", SecretNames: []string{"A", "B"}})
			check(t, err)
			same("create")
			if got := indexOf(t, s, "acme"); !slices.Equal(got, []string{"A/bot", "B/bot"}) {
				t.Fatalf("index after create: %v", got)
			}
			_, err = svc.UpdateAgent(sys, "acme", "bot", runs.AgentUpdate{SecretNames: resolver.NamesUpdate{Add: []string{"C"}, Remove: []string{"A"}}})
			check(t, err)
			same("update")
			_, err = svc.UpdateAgent(sys, "acme", resolver.DefaultAgentID, runs.AgentUpdate{SecretNames: resolver.NamesUpdate{Add: []string{"B"}}})
			check(t, err)
			same("update of the default identity")

			big := names("BIG", 300)
			_, err = svc.CreateAgent(sys, runs.Agent{Team: "acme", ID: "big", SecretNames: big})
			check(t, err)
			same("create with 300 names")
			_, err = svc.UpdateAgent(sys, "acme", "big", runs.AgentUpdate{SecretNames: resolver.NamesUpdate{Set: true, Names: names("NEW", 200)}})
			check(t, err)
			same("replace 300 names by 200 others")
			check(t, svc.DeleteAgent(sys, "acme", "big", ""))
			same("delete with 200 names")
			check(t, svc.DeleteAgent(sys, "acme", "bot", ""))
			same("delete")
			if got := indexOf(t, s, "acme"); !slices.Equal(got, []string{"B/default"}) {
				t.Fatalf("index at the end: %v, want [B/default]", got)
			}
		})
	}
}

// putUnindexed writes identity id of team as a build before the index
// did: its record alone.
func putUnindexed(t *testing.T, s kv.Store, team, id string, refs []string) {
	t.Helper()
	rec := resolver.AgentRecord{Team: team, ID: id, SecretNames: refs, StartPolicy: "admins"}
	check(t, s.Apply(context.Background(), nil, []kv.Write{kv.Put(resolver.AgentKey(team, id), resolver.Encode(rec))}))
}

// TestRestrictionIndexBuiltForOldStore: a store whose identities an older
// build wrote (records, no entries, no mark) is indexed when opened, once,
// by replicas starting together.
func TestRestrictionIndexBuiltForOldStore(t *testing.T) {
	for name, open := range backends(t) {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			ctx := context.Background()
			putUnindexed(t, s, "acme", "one", []string{"A", "B"})
			putUnindexed(t, s, "acme", "two", []string{"B"})
			putUnindexed(t, s, "beta", "big", names("BIG", 300))
			var wg sync.WaitGroup
			var written atomic.Int64
			for range 3 {
				wg.Go(func() {
					n, err := runs.BuildRestrictionIndex(ctx, s)
					if err != nil {
						t.Error(err)
					}
					written.Add(int64(n))
				})
			}
			wg.Wait()
			if got := written.Load(); got != 303 {
				t.Errorf("entries written by three builds: %d, want 303 (once each)", got)
			}
			for _, team := range []string{"acme", "beta"} {
				if got, want := indexOf(t, s, team), indexWanted(t, s, team); !slices.Equal(got, want) || len(got) == 0 {
					t.Errorf("index of %s: %d entries, want %d", team, len(got), len(want))
				}
			}
			if v, err := s.Get(ctx, resolver.RestrictIndexKey); err != nil || string(v) != "1" {
				t.Errorf("mark: %q, %v", v, err)
			}
			if n, err := runs.BuildRestrictionIndex(ctx, s); n != 0 || err != nil {
				t.Errorf("build of a marked store: wrote %d, %v; want 0, nil", n, err)
			}
		})
	}
}

// TestRestrictedSecretOfOldStoreStaysRestricted: an identity written by an
// older build restricts DEPLOY_TOKEN; the first resolution on the store
// (which nothing indexed at start) sees it restricted.
func TestRestrictedSecretOfOldStoreStaysRestricted(t *testing.T) {
	f := newRunsFixture(t)
	putUnindexed(t, f.store, "acme", "legacy", []string{"DEPLOY_TOKEN"})
	check(t, f.store.Apply(context.Background(), nil, []kv.Write{kv.Delete(resolver.RestrictIndexKey)}))
	res, err := f.resolve(f.runnerA, "acme", runs.RunContext{Trigger: resolver.TriggerSchedule, Environment: "ops-tools"}, "")
	check(t, err)
	if got := f.open(t, res); got["DEPLOY_TOKEN"] != "" || got["PAGERDUTY_API_KEY"] == "" {
		t.Errorf("injected %v: want PAGERDUTY_API_KEY and not DEPLOY_TOKEN (restricted to legacy)", keys(got))
	}
	if got := unresolvedOf(res.Run.Unresolved); !slices.Contains(got, "DEPLOY_TOKEN:restricted") {
		t.Errorf("unresolved %v, want DEPLOY_TOKEN:restricted", got)
	}
	if _, err := f.store.Get(context.Background(), resolver.RestrictKey("acme", "DEPLOY_TOKEN", "legacy")); err != nil {
		t.Errorf("entry of legacy: %v", err)
	}
}

// countingStore counts the entries its reads return.
type countingStore struct {
	kv.Store
	keys atomic.Int64
}

func (c *countingStore) Get(ctx context.Context, key string) ([]byte, error) {
	v, err := c.Store.Get(ctx, key)
	if err == nil {
		c.keys.Add(1)
	}
	return v, err
}

func (c *countingStore) GetMany(ctx context.Context, keys []string) ([][]byte, error) {
	vs, err := c.Store.GetMany(ctx, keys)
	for _, v := range vs {
		if v != nil {
			c.keys.Add(1)
		}
	}
	return vs, err
}

func (c *countingStore) Scan(ctx context.Context, prefix, after string, limit int) ([]kv.KV, error) {
	kvs, err := c.Store.Scan(ctx, prefix, after, limit)
	c.keys.Add(int64(len(kvs)))
	return kvs, err
}

func (c *countingStore) ScanPrefixes(ctx context.Context, prefixes []string) ([][]kv.KV, error) {
	out, err := c.Store.ScanPrefixes(ctx, prefixes)
	for _, kvs := range out {
		c.keys.Add(int64(len(kvs)))
	}
	return out, err
}

// TestAllowlistedResolutionReadsONames: deciding about the 10 names of an
// allowlist reads as many keys of the resolver's store in a team of 50
// identities as in a team of 500, each referencing 20 names (two of them
// referencing an allowlisted one).
func TestAllowlistedResolutionReadsONames(t *testing.T) {
	f := newRunsFixture(t)
	ctx := context.Background()
	list := []string{"DEPLOY_TOKEN", "PAGERDUTY_API_KEY", "OTHER_KEY", "GITHUB_TOKEN", "RESTRICTED_KEY", "M1", "M2", "M3", "M4", "M5"}
	cs := &countingStore{Store: f.store}
	svc := runs.New(directory.New(resolver.NewStore(cs, f.clk.Now)), rsgrpc.SecretStoreOf(ssgrpc.NewRunSecrets(f.svc)))
	_, err := runs.BuildRestrictionIndex(ctx, f.store)
	check(t, err)
	added := 0
	grow := func(to int) {
		var writes []kv.Write
		for ; added < to; added++ {
			id := fmt.Sprintf("bot-%04d", added)
			refs := names("REF"+strings.ToUpper(id[4:]), 20)
			if added < 2 {
				refs[0] = "M1" // allowlisted: these two matter to the decision
			}
			writes = append(writes, kv.Put(resolver.AgentKey("acme", id), resolver.Encode(resolver.AgentRecord{Team: "acme", ID: id, SecretNames: refs})))
			for _, n := range refs {
				writes = append(writes, kv.Put(resolver.RestrictKey("acme", n, id), resolver.Marker))
			}
		}
		check(t, f.store.Apply(ctx, nil, writes))
	}
	reads := func() (int64, runs.Resolution) {
		ticket, err := runs.RunsTestStart(f.runnerA, svc, "acme", runs.RunContext{Trigger: resolver.TriggerSchedule, Secrets: list}, "")
		check(t, err)
		cs.keys.Store(0)
		rcpt := f.recipient()
		res, err := svc.ResolveRun(f.runnerA, runs.ResolveRequest{Team: "acme", Ticket: ticket, Recipient: &rcpt})
		check(t, err)
		return cs.keys.Load(), res
	}
	counts := map[int]int64{}
	for _, size := range []int{50, 500} {
		grow(size)
		n, res := reads()
		counts[size] = n
		if got := unresolvedOf(res.Run.Unresolved); !slices.Contains(got, "RESTRICTED_KEY:restricted") {
			t.Fatalf("%d identities: unresolved %v, want RESTRICTED_KEY restricted", size, got)
		}
	}
	t.Logf("keys read by a 10-name resolution, by identities: %v", counts)
	if counts[50] != counts[500] {
		t.Errorf("keys read: %d with 50 identities, %d with 500; want the same", counts[50], counts[500])
	}
	if counts[500] > 20 {
		t.Errorf("keys read with 500 identities: %d, want at most 20 (10 names)", counts[500])
	}
}

// TestExplainRunBoundsUnlisted: an explanation lists every allowlisted
// candidate and at most MaxUnlistedExplained other names, the first by
// name, with their restrictions read by name, and counts the rest.
func TestExplainRunBoundsUnlisted(t *testing.T) {
	f := newRunsFixture(t)
	extra := runs.MaxUnlistedExplained + 5
	for _, n := range names("UNLISTED", extra) {
		f.plant(t, f.aliceP, "teams/acme", n, runValue("teams/acme", n))
	}
	ex, err := f.runs.ExplainRun(f.bob, "acme", runs.RunContext{Trigger: resolver.TriggerSchedule, Secrets: []string{"DEPLOY_TOKEN", "ZZZ_MISSING"}})
	check(t, err)
	unlisted := 4 + extra // GITHUB_TOKEN, OTHER_KEY, PAGERDUTY_API_KEY, RESTRICTED_KEY
	if got, want := len(ex.Candidates), 1+runs.MaxUnlistedExplained; got != want {
		t.Errorf("candidates listed: %d, want %d", got, want)
	}
	d := decisionsOf(ex)
	if d[acme+":DEPLOY_TOKEN"] != runrules.Injected || d[acme+":RESTRICTED_KEY"] != runrules.ExcludedRestricted {
		t.Errorf("decisions: DEPLOY_TOKEN %v, RESTRICTED_KEY %v; want injected, restricted", d[acme+":DEPLOY_TOKEN"], d[acme+":RESTRICTED_KEY"])
	}
	if _, ok := d[acme+":"+names("UNLISTED", extra)[extra-1]]; ok {
		t.Errorf("the last unlisted name is listed: the bound keeps the first by name")
	}
	want := fmt.Sprintf("%d more candidate(s) not in the allowlist are not listed", unlisted-runs.MaxUnlistedExplained)
	if !hasNote(ex, want) {
		t.Errorf("notes %q, want one saying %q", ex.Notes, want)
	}
	if got := unresolvedOf(ex.Unresolved); !slices.Equal(got, []string{"ZZZ_MISSING:not_found"}) {
		t.Errorf("unresolved: %v", got)
	}
}
