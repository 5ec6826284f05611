package secretstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ozsecrets/oz/lib/envname"
	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/runrules"
)

// The secretstore's side of run resolution (DESIGN §5). The resolver
// decides which secrets a run receives; the secretstore lists the
// candidates' metadata (RunCandidates) and opens exactly the secrets the
// resolver then names, each at the value version it decided on
// (OpenRunSecrets), for the caller to seal to the runner. It applies no
// run rule, and the resolver never holds plaintext.
//
// Nothing here writes an audit event: reading changes nothing, and the
// resolver records every resolution (run.resolve, with the value versions
// injected) in the same write as its run record, before any value is
// returned to the runner.

// Bounds of one run request.
const (
	// MaxRunOwners bounds the owners of RunCandidates. A run has a team
	// and at most one user; the bound keeps one request's reads small.
	MaxRunOwners = 16
	// MaxRunSecrets bounds the secrets OpenRunSecrets opens at once.
	MaxRunSecrets = 4096
)

// RunCandidates returns the metadata of every secret of owners
// ("teams/{team}", "users/{user}"; distinct, at most MaxRunOwners): by
// owner in the order given, then by name without regard to case. It opens
// no value. The secrets are read in one consistent snapshot when the
// Store is an OwnersLister.
//
// INTERNAL: it is for run resolution only, behind the internal,
// mutual-TLS-only RunSecretsService; it checks no principal.
//
// Errors: KindInvalid for field "owners" when owners is malformed, before
// anything is read; anything else is internal.
func (s *Service) RunCandidates(ctx context.Context, owners []string) ([]runrules.Secret, error) {
	os, err := parseRunOwners(owners)
	if err != nil {
		return nil, err
	}
	all, err := s.readOwners(ctx, os)
	if err != nil {
		return nil, err
	}
	out := make([]runrules.Secret, len(all))
	for i, sec := range all {
		out[i] = runSecret(sec)
	}
	// Debug: every resolution lists once and opens once (logged at Info),
	// and every read of a run in flight lists.
	s.log.DebugContext(ctx, "run candidates listed", "owners", strings.Join(owners, ","), "candidates", len(out))
	return out, nil
}

// RunCandidatesNamed is RunCandidates of only the secrets named exactly
// one of names (a run's allowlist; at most MaxRunSecrets, and a name twice
// counts once), read by key, so that a resolution with an allowlist costs
// what the run asks for, not what its owners hold (issue 19): by owner in
// the order given, then by name without regard to case, as RunCandidates.
// A name that is not a well-formed secret name names no secret. With no
// names it is RunCandidates.
//
// INTERNAL, as RunCandidates.
//
// Errors: KindInvalid for field "owners" as RunCandidates, and for field
// "names" when there are more than MaxRunSecrets, before anything is
// read; anything else is internal.
func (s *Service) RunCandidatesNamed(ctx context.Context, owners, names []string) ([]runrules.Secret, error) {
	if len(names) == 0 {
		return s.RunCandidates(ctx, owners)
	}
	os, err := parseRunOwners(owners)
	if err != nil {
		return nil, err
	}
	if len(names) > MaxRunSecrets {
		return nil, errs.Field("names", "must list at most %d names (got %d)", MaxRunSecrets, len(names))
	}
	var refs []runrules.Secret
	var refOwners []Owner
	for _, o := range os {
		seen := map[string]bool{}
		for _, n := range names {
			if _, ok := envname.Syntax(n, maxLookupNameLen); !ok || seen[n] {
				continue
			}
			seen[n] = true
			refs = append(refs, runrules.Secret{Owner: o.String(), Name: n})
			refOwners = append(refOwners, o)
		}
	}
	secs, err := s.readRunSecrets(ctx, refOwners, refs)
	if err != nil {
		return nil, err
	}
	out := make([]runrules.Secret, 0, len(secs))
	for _, sec := range secs {
		if sec != nil {
			out = append(out, runSecret(sec))
		}
	}
	// Each owner's in the order of RunCandidates: by folded name.
	slices.SortStableFunc(out, func(a, b runrules.Secret) int {
		return cmp.Or(ownerIndex(os, a.Owner)-ownerIndex(os, b.Owner), strings.Compare(FoldName(a.Name), FoldName(b.Name)))
	})
	s.log.DebugContext(ctx, "run candidates read by name", "owners", strings.Join(owners, ","), "names", len(names), "candidates", len(out))
	return out, nil
}

// ownerIndex is the place of owner among os.
func ownerIndex(os []Owner, owner string) int {
	for i, o := range os {
		if o.String() == owner {
			return i
		}
	}
	return len(os)
}

func runSecret(sec *Secret) runrules.Secret {
	return runrules.Secret{Owner: sec.Owner.String(), Name: sec.Name, Version: sec.ValueVersion, Created: sec.CreateTime,
		Binding: cloneBinding(sec.Binding)}
}

// OpenRunSecrets opens the values of exactly refs, each at the value
// version and creation time it names, and passes them to use: values[i]
// is the value of refs[i]. When use returns, the values' memory is zeroed
// (best effort: see Plaintext): use must keep neither the values nor
// anything sharing their memory. OpenRunSecrets returns use's error as is.
//
// Each secret is read, checked and opened with the additional data of its
// record's owner, name and value version, so a value opens only as the
// version named: a secret rotated, deleted or made again since the caller
// listed it is refused, never opened in its place. So is one whose
// binding to hosts is no longer the ref's Binding (nil: not bound): the
// run's record says how each secret is injected, and the runner must
// inject it that way — a secret bound since it was listed must not reach
// the agent as a plain value.
//
// INTERNAL, as RunCandidates: the caller has decided that the run may
// receive these values. Nothing user-facing may call it.
//
// Errors: KindInvalid for field "secrets" when refs is malformed (more
// than MaxRunSecrets, an owner or name that is not well formed, a version
// below 1, no creation time, a name twice: each becomes an environment
// variable), before anything is read; KindFailedPrecondition naming the
// first secret that is no longer as named (value version, creation time
// or binding), before any value is opened;
// anything else is internal.
func (s *Service) OpenRunSecrets(ctx context.Context, refs []runrules.Secret, use func(values []Plaintext) error) error {
	owners, err := checkRunSecrets(refs)
	if err != nil {
		return err
	}
	records, err := s.readRunSecrets(ctx, owners, refs)
	if err != nil {
		return err
	}
	for i, ref := range refs {
		switch sec := records[i]; {
		case sec == nil:
			return errs.E(errs.KindFailedPrecondition, "%s/secrets/%s was deleted since it was listed", ref.Owner, ref.Name)
		case !runSecret(sec).Same(ref):
			return errs.E(errs.KindFailedPrecondition, "%s/secrets/%s changed since it was listed (value version %d, listed %d)", ref.Owner, ref.Name, sec.ValueVersion, ref.Version)
		case !sec.Binding.Equal(ref.Binding):
			return errs.E(errs.KindFailedPrecondition, "%s/secrets/%s changed since it was listed (its binding to hosts)", ref.Owner, ref.Name)
		}
	}
	values := make([]Plaintext, 0, len(records))
	defer func() {
		for _, v := range values {
			v.wipe()
		}
	}()
	for _, rec := range records {
		v, err := s.openValue(rec)
		if err != nil {
			return err
		}
		values = append(values, v)
	}
	if err := use(values); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "run secrets opened", "secrets", len(values))
	return nil
}

// readRunSecrets reads the secrets refs name (nil where there is none):
// in one read when the Store is a ManyGetter (one etcd round trip, not
// one per secret), else one Get each.
func (s *Service) readRunSecrets(ctx context.Context, owners []Owner, refs []runrules.Secret) ([]*Secret, error) {
	names := make([]string, len(refs))
	for i, ref := range refs {
		names[i] = ref.Name
	}
	if mg, ok := s.store.(ManyGetter); ok {
		secs, err := mg.GetMany(ctx, owners, names)
		if err != nil {
			return nil, fmt.Errorf("get the run's %d secrets: %w", len(refs), err)
		}
		return secs, nil
	}
	out := make([]*Secret, len(refs))
	for i := range refs {
		sec, err := s.store.Get(ctx, owners[i], names[i])
		switch {
		case errors.Is(err, errs.NotFound):
		case err != nil:
			return nil, fmt.Errorf("get %s/secrets/%s: %w", owners[i], names[i], err)
		default:
			out[i] = sec
		}
	}
	return out, nil
}

// readOwners returns every secret of owners (sealed values included): in
// one call when the Store is an OwnersLister, else page by page.
func (s *Service) readOwners(ctx context.Context, owners []Owner) ([]*Secret, error) {
	if ol, ok := s.store.(OwnersLister); ok {
		secs, err := ol.ListOwners(ctx, owners)
		if err != nil {
			return nil, fmt.Errorf("list secrets of %v: %w", owners, err)
		}
		return secs, nil
	}
	var out []*Secret
	for _, o := range owners {
		after := ""
		for {
			page, err := s.store.List(ctx, o, after, MaxPageSize)
			if err != nil {
				return nil, fmt.Errorf("list secrets of %s: %w", o, err)
			}
			out = append(out, page...)
			if len(page) < MaxPageSize {
				break
			}
			after = page[len(page)-1].Name
		}
	}
	return out, nil
}

// parseRunOwners checks the owners of RunCandidates: present, at most
// MaxRunOwners, none twice, each "teams/{team}" or "users/{user}".
func parseRunOwners(owners []string) ([]Owner, error) {
	const field = "owners"
	switch {
	case len(owners) == 0:
		return nil, errs.Field(field, "is required: the owners whose secrets are candidates (teams/{team}, users/{user})")
	case len(owners) > MaxRunOwners:
		return nil, errs.Field(field, "must list at most %d owners (got %d)", MaxRunOwners, len(owners))
	}
	out := make([]Owner, len(owners))
	for i, s := range owners {
		o, err := ParseOwner(s)
		if err != nil {
			return nil, errs.Field(field, "entry %d: %s", i, err.(*errs.Error).Message)
		}
		for _, prev := range out[:i] {
			if prev == o {
				return nil, errs.Field(field, "entry %d: %s is listed twice", i, o)
			}
		}
		out[i] = o
	}
	return out, nil
}

// checkRunSecrets checks the secrets of OpenRunSecrets and returns their
// owners parsed.
func checkRunSecrets(refs []runrules.Secret) ([]Owner, error) {
	const field = "secrets"
	if len(refs) > MaxRunSecrets {
		return nil, errs.Field(field, "must name at most %d secrets (got %d)", MaxRunSecrets, len(refs))
	}
	owners := make([]Owner, len(refs))
	names := make(map[string]bool, len(refs))
	for i, ref := range refs {
		o, err := ParseOwner(ref.Owner)
		if err != nil {
			return nil, errs.Field(field, "entry %d: owner %s", i, err.(*errs.Error).Message)
		}
		if rule, ok := envname.Syntax(ref.Name, maxLookupNameLen); !ok {
			return nil, errs.Field(field, "entry %d: the name %s", i, rule)
		}
		switch {
		case ref.Version < 1:
			return nil, errs.Field(field, "entry %d: the value version must be at least 1", i)
		case ref.Created.IsZero():
			return nil, errs.Field(field, "entry %d: the creation time is required, as listed", i)
		case names[ref.Name]:
			return nil, errs.Field(field, "entry %d: %s is named twice (each name becomes one environment variable)", i, ref.Name)
		}
		names[ref.Name] = true
		owners[i] = o
	}
	return owners, nil
}
