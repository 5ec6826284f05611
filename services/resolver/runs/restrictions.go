package runs

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	auditv1 "github.com/ozsecrets/oz/proto/gen/oz/audit/v1"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/kv"
	"github.com/ozsecrets/oz/services/internal/runrules"
	"github.com/ozsecrets/oz/services/resolver"
)

// Restrictions (DESIGN §5 step 2), indexed by name.
//
// Which identities reference a team secret name is kept twice: in the
// identities' records (AgentRecord.SecretNames), and as one entry per
// (name, identity) at resolver.RestrictKey, so that deciding about N
// names reads the entries of those N names, whatever the number of
// identities and of their references. The entries change in the same
// Apply as the record they derive from, on bbolt and etcd alike. A change
// too large for one Apply (an identity may reference up to
// resolver.MaxSecretNames names; etcd takes 128 operations) writes the
// entries that restrict before the record and removes the entries that
// no longer do after it: in between, and if it is interrupted, a name is
// at most restricted to one identity too many — it never looks
// unrestricted while a record says otherwise.
//
// A store written by a build before the index has records without
// entries: BuildRestrictionIndex adds them and then writes
// resolver.RestrictIndexKey; until that key is there no resolution reads
// the index (restrictionsFor builds it first, or refuses).

// indexVersion is the value of resolver.RestrictIndexKey.
var indexVersion = []byte("1")

// applyOverhead is what resolver.Store.Apply may add to a call beside the
// caller's conditions and writes: an idempotency record (a condition and
// three writes) and an event in a few parts.
const applyOverhead = 8

// restrictionWrites returns the index changes of identity id of team
// whose references change from before to after: the entries to put (names
// added) and to delete (names removed).
func restrictionWrites(team, id string, before, after []string) (puts, dels []kv.Write) {
	for _, n := range after {
		if !slices.Contains(before, n) {
			puts = append(puts, kv.Put(resolver.RestrictKey(team, n, id), resolver.Marker))
		}
	}
	for _, n := range before {
		if !slices.Contains(after, n) {
			dels = append(dels, kv.Delete(resolver.RestrictKey(team, n, id)))
		}
	}
	return puts, dels
}

// applyAgent commits a change of an identity: writes (its record first,
// then revocations) under conds with ev, and the index changes puts and
// dels (restrictionWrites). When everything fits one Apply it is one
// Apply. Otherwise the puts that do not fit are written first, in Applies
// under the same conds (a failed one is the same *kv.ConflictError the
// change would return), and the dels that do not fit after, each Apply
// under after (the record as written; absent for a deletion): once the
// record has changed again, the newer change owns its entries, and
// whatever is left restricts one identity too many, never too few.
func (r *Service) applyAgent(ctx context.Context, conds []kv.Cond, writes []kv.Write, ev *auditv1.Event, puts, dels []kv.Write, after kv.Cond) error {
	room := max(resolver.MaxApplyOps-len(conds)-len(writes)-applyOverhead, 0)
	chunk := resolver.MaxApplyOps - len(conds) - applyOverhead
	for len(puts) > room {
		n := min(len(puts)-room, chunk)
		if err := r.s.KV().Apply(ctx, conds, puts[:n]); err != nil {
			return err
		}
		puts = puts[n:]
	}
	n := min(room-len(puts), len(dels))
	all := slices.Concat(writes, puts, dels[:n])
	if err := r.s.Apply(ctx, conds, all, ev); err != nil {
		return err
	}
	for dels = dels[n:]; len(dels) > 0; {
		n := min(len(dels), resolver.MaxApplyOps-1)
		if err := r.s.KV().Apply(ctx, []kv.Cond{after}, dels[:n]); err != nil {
			// The change is made: what is left over-restricts, and a
			// later change of the identity owns its entries.
			if resolver.Conflict(err) < 0 {
				return fmt.Errorf("remove restriction entries: %w", err)
			}
			return nil
		}
		dels = dels[n:]
	}
	return nil
}

// restriction is one index entry: identity agent references name.
type restriction struct{ name, agent string }

// identitiesOf groups entries by identity, as runrules.Input.Identities:
// each identity that references one of the names read, with those names.
func identitiesOf(entries []restriction) []runrules.Identity {
	by := map[string][]string{}
	for _, e := range entries {
		by[e.agent] = append(by[e.agent], e.name)
	}
	out := make([]runrules.Identity, 0, len(by))
	for id, names := range by {
		out = append(out, runrules.Identity{ID: id, SecretNames: names})
	}
	slices.SortFunc(out, func(a, b runrules.Identity) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// identitiesFor returns what step 2 needs to decide about names (nil:
// every name, for a run without an allowlist): the identities of team
// that reference one of them, with those of names they reference. The
// decision on a name depends only on the identities that reference it
// (TestRestrictionsForNamesDecideTheSame), so with names it reads the
// index entries of those names alone; without, every identity's record,
// since such a run reads every candidate anyway.
func (r *Service) identitiesFor(ctx context.Context, team string, names []string) ([]runrules.Identity, error) {
	if names == nil {
		return r.teamIdentities(ctx, team)
	}
	return r.restrictionsFor(ctx, team, names)
}

// restrictionsFor reads the index entries of names in team. A store whose
// index is not built yet (resolver.RestrictIndexKey absent: written by an
// older build) is indexed first; when that fails the answer is
// Unavailable, never a decision without the index, which would let a
// restricted secret look unrestricted.
func (r *Service) restrictionsFor(ctx context.Context, team string, names []string) ([]runrules.Identity, error) {
	entries, indexed, err := readRestrictions(ctx, r.s.KV(), team, names)
	if err != nil || indexed {
		return identitiesOf(entries), err
	}
	// The build reads and writes without the resolution's ReadSet (its
	// own reads are not the decision's), within the request's lifetime.
	bctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	if _, err := BuildRestrictionIndex(bctx, r.s.KV()); err != nil {
		return nil, &errs.Error{Kind: errs.KindUnavailable, Err: err,
			Message: "the index of agent identities' secret references is not built yet (ozresolverd builds it when it starts); try again"}
	}
	entries, indexed, err = readRestrictions(ctx, r.s.KV(), team, names)
	if err == nil && !indexed {
		return nil, errs.E(errs.KindUnavailable, "the index of agent identities' secret references is not built yet; try again")
	}
	return identitiesOf(entries), err
}

// buildTimeout bounds a build made by a resolution that found none.
const buildTimeout = time.Minute

// readRestrictions reads the entries of names in team, and whether the
// index is built, in one read of the store per kv.MaxGetMany-1 names.
func readRestrictions(ctx context.Context, s kv.Store, team string, names []string) ([]restriction, bool, error) {
	prefixes := []string{resolver.RestrictIndexKey}
	for _, n := range names {
		prefixes = append(prefixes, resolver.RestrictPrefix(team, n))
	}
	var entries []restriction
	indexed := false
	for len(prefixes) > 0 {
		n := min(len(prefixes), kv.MaxGetMany)
		out, err := s.ScanPrefixes(ctx, prefixes[:n])
		if err != nil {
			return nil, false, fmt.Errorf("read restrictions: %w", err)
		}
		for i, kvs := range out {
			for _, e := range kvs {
				if e.Key == resolver.RestrictIndexKey {
					indexed = string(e.Value) == string(indexVersion)
					continue
				}
				if prefixes[i] == resolver.RestrictIndexKey {
					continue // a key that merely starts like it
				}
				name := strings.TrimSuffix(strings.TrimPrefix(prefixes[i], resolver.PrefixRestrict+team+"/"), "/")
				entries = append(entries, restriction{name: name, agent: strings.TrimPrefix(e.Key, prefixes[i])})
			}
		}
		prefixes = prefixes[n:]
	}
	return entries, indexed, nil
}

// buildMu keeps one build at a time in this process; replicas of an etcd
// store build concurrently, which the conditions make safe.
var buildMu sync.Mutex

// maxUnchangedAgents is how many identity records the guard of the index
// key may cover (etcd checks one compare per record read in the same
// transaction): beyond it the key is written on the entries' being found
// complete alone.
const maxUnchangedAgents = resolver.MaxApplyOps - 8

// BuildRestrictionIndex makes the index of restrictions complete in s, a
// resolver's store, and marks it so (resolver.RestrictIndexKey); it
// returns the number of entries it wrote. A store already marked is left
// alone, and so is a new one (it is marked, with nothing to write): it is
// cheap to call at every start. Every entry is written on condition that
// its identity's record is still as read, and the mark on condition that
// it is absent and, when the records fit one transaction's compares, that
// no record changed since every entry was found in place; replicas
// starting together on one etcd namespace may all call it. Builds of
// ozresolverd before the index must not change identities once it is
// marked (stop them before starting this build on a shared store): the
// index would miss their changes.
func BuildRestrictionIndex(ctx context.Context, s kv.Store) (int, error) {
	buildMu.Lock()
	defer buildMu.Unlock()
	written := 0
	for range 5 {
		switch _, err := s.Get(ctx, resolver.RestrictIndexKey); {
		case err == nil:
			return written, nil
		case !resolver.IsNotFound(err):
			return written, fmt.Errorf("read %s: %w", resolver.RestrictIndexKey, err)
		}
		rctx, reads := kv.WithReadSet(ctx)
		recs, err := s.Scan(rctx, resolver.PrefixAgents, "", 0)
		if err != nil {
			return written, fmt.Errorf("read agent identities: %w", err)
		}
		n, err := addMissing(ctx, s, recs)
		written += n
		if err != nil {
			return written, err
		}
		if n > 0 {
			continue // read again: the records may have changed meanwhile
		}
		conds := []kv.Cond{kv.Absent(resolver.RestrictIndexKey)}
		if len(recs) <= maxUnchangedAgents {
			conds = append(conds, kv.Unchanged(reads))
		}
		err = s.Apply(ctx, conds, []kv.Write{kv.Put(resolver.RestrictIndexKey, indexVersion)})
		switch resolver.Conflict(err) {
		case -1:
			if err != nil {
				return written, fmt.Errorf("write %s: %w", resolver.RestrictIndexKey, err)
			}
			return written, nil
		case 0:
			return written, nil // another replica marked it
		}
	}
	return written, errs.E(errs.KindUnavailable, "agent identities kept changing while their index was built; try again")
}

// addMissing writes the entries the identity records recs call for and
// the store lacks, each identity's under the condition that its record is
// still as read (one that changed meanwhile is left to the next pass).
// It returns how many it wrote.
func addMissing(ctx context.Context, s kv.Store, recs []kv.KV) (int, error) {
	written := 0
	for _, e := range recs {
		var rec resolver.AgentRecord
		if err := json.Unmarshal(e.Value, &rec); err != nil {
			return written, fmt.Errorf("decode %s: %w", e.Key, err)
		}
		names := resolver.UniqueNames(rec.SecretNames)
		for len(names) > 0 {
			part := names[:min(len(names), resolver.MaxApplyOps-1)]
			names = names[len(part):]
			keys := make([]string, len(part))
			for i, n := range part {
				keys[i] = resolver.RestrictKey(rec.Team, n, rec.ID)
			}
			vals, err := s.GetMany(ctx, keys)
			if err != nil {
				return written, fmt.Errorf("read restriction entries: %w", err)
			}
			var puts []kv.Write
			for i, v := range vals {
				if v == nil {
					puts = append(puts, kv.Put(keys[i], resolver.Marker))
				}
			}
			if len(puts) == 0 {
				continue
			}
			err = s.Apply(ctx, []kv.Cond{kv.Equal(e.Key, e.Value)}, puts)
			if resolver.Conflict(err) == 0 {
				written++ // changed meanwhile: count it, so that the caller reads again
				break
			}
			if err != nil {
				return written, fmt.Errorf("write restriction entries: %w", err)
			}
			written += len(puts)
		}
	}
	return written, nil
}
