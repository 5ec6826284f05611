package secretstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/internal/runrules"
)

// The secretstore's side of run resolution (DESIGN §5). The resolver
// decides which secrets a run receives and hands the secretstore the
// decision in mechanical form, a runrules.Selection. The secretstore reads
// the owners' secrets, picks with runrules.Select — the very function the
// resolver's runrules.Decide is property-tested against, so the two agree
// by construction — and opens exactly what it picked, for the caller to
// seal to the runner. The resolver never holds plaintext.
//
// Nothing here writes an audit event: a selection changes nothing, and the
// resolver records every resolution (run.resolve, with the value versions
// injected) in the same write as its run record, before any value is
// returned to the runner.

// MaxRunOwners bounds the owners of one selection. A run has a team and at
// most one user; the bound keeps one request's reads small.
const MaxRunOwners = 16

// RunSecrets is what a selection found. Metadata only: never a value.
type RunSecrets struct {
	// Candidates are every secret of the selection's owners: by owner in
	// the selection's order, then by name without regard to case.
	Candidates []runrules.Secret
	// Selected is runrules.Select(selection, Candidates): sorted by name.
	Selected []runrules.Secret
}

// SelectRun reads the metadata of every secret of sel's owners and selects
// from them with runrules.Select. It opens no value (ExplainRun needs none).
//
// INTERNAL: it is for run resolution only, behind the internal,
// mutual-TLS-only RunSecretsService; it checks no principal.
//
// Errors: KindInvalid naming the field ("selection.owners",
// "selection.excluded", "selection.allowlist.names") when sel is malformed,
// before anything is read; anything else is internal.
func (s *Service) SelectRun(ctx context.Context, sel runrules.Selection) (*RunSecrets, error) {
	rs, _, err := s.selectRun(ctx, sel)
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "run secrets selected", "owners", strings.Join(sel.Owners, ","),
		"candidates", len(rs.Candidates), "selected", len(rs.Selected), "opened", false)
	return rs, nil
}

// OpenRun is SelectRun that also decrypts the selected values and passes
// them to use, in the order of RunSecrets.Selected (each with the value
// version of its candidate). When use returns, the values' memory is zeroed
// (best effort: see Plaintext): use must keep neither the values nor
// anything sharing their memory. OpenRun returns use's error as is.
//
// The candidates' metadata and sealed values come from the same records —
// from one consistent read when the Store is an OwnersLister — and each
// value is opened with the additional data of its record's owner, name and
// value version, so a value opens only as the version reported: there is no
// window in which a concurrent update could make them disagree.
//
// INTERNAL, as SelectRun: the caller has decided that the run may receive
// these values. Nothing user-facing may call it.
func (s *Service) OpenRun(ctx context.Context, sel runrules.Selection, use func(*RunSecrets, []UnsealedValue) error) (*RunSecrets, error) {
	rs, records, err := s.selectRun(ctx, sel)
	if err != nil {
		return nil, err
	}
	values := make([]UnsealedValue, 0, len(records))
	defer func() {
		for _, v := range values {
			v.Value.wipe()
		}
	}()
	for _, rec := range records {
		v, err := s.openValue(rec)
		if err != nil {
			return nil, err
		}
		values = append(values, UnsealedValue{Owner: rec.Owner, Name: rec.Name, ValueVersion: rec.ValueVersion, Value: v})
	}
	if err := use(rs, values); err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "run secrets selected", "owners", strings.Join(sel.Owners, ","),
		"candidates", len(rs.Candidates), "selected", len(rs.Selected), "opened", true)
	return rs, nil
}

// selectRun validates sel, reads the owners' secrets and selects. records
// are the selected secrets' stored records, in the order of rs.Selected.
func (s *Service) selectRun(ctx context.Context, sel runrules.Selection) (rs *RunSecrets, records []*Secret, err error) {
	owners, err := ValidateRunSelection(sel)
	if err != nil {
		return nil, nil, err
	}
	all, err := s.readOwners(ctx, owners)
	if err != nil {
		return nil, nil, err
	}
	rs = &RunSecrets{Candidates: make([]runrules.Secret, len(all))}
	byRef := make(map[runrules.Secret]*Secret, len(all))
	for i, sec := range all {
		c := runrules.Secret{Owner: sec.Owner.String(), Name: sec.Name, Version: sec.ValueVersion, Created: sec.CreateTime}
		rs.Candidates[i] = c
		byRef[c] = sec
	}
	rs.Selected = runrules.Select(sel, rs.Candidates)
	records = make([]*Secret, len(rs.Selected))
	for i, c := range rs.Selected {
		rec, ok := byRef[c]
		if !ok { // Select returns a subset of its input
			return nil, nil, fmt.Errorf("select run secrets: %s/secrets/%s is not a candidate", c.Owner, c.Name)
		}
		records[i] = rec
	}
	return rs, records, nil
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

// ValidateRunSelection checks a selection as SelectRun does, and returns its
// owners parsed: owners present (at most MaxRunOwners, none twice), each
// "teams/{team}" or "users/{user}"; excluded secrets with a well-formed
// owner and name; allowlisted names well-formed secret names (reserved
// names are allowed: they simply match nothing). Errors are errs.Field
// errors for "selection.owners", "selection.excluded" or
// "selection.allowlist.names".
func ValidateRunSelection(sel runrules.Selection) ([]Owner, error) {
	const fOwners, fExcluded, fAllow = "selection.owners", "selection.excluded", "selection.allowlist.names"
	switch {
	case len(sel.Owners) == 0:
		return nil, errs.Field(fOwners, "is required: the owners to select from, in precedence order (users/{user} before teams/{team})")
	case len(sel.Owners) > MaxRunOwners:
		return nil, errs.Field(fOwners, "must list at most %d owners (got %d)", MaxRunOwners, len(sel.Owners))
	}
	owners := make([]Owner, len(sel.Owners))
	for i, s := range sel.Owners {
		o, err := ParseOwner(s)
		if err != nil {
			return nil, errs.Field(fOwners, "entry %d: %s", i, err.(*errs.Error).Message)
		}
		for _, prev := range owners[:i] {
			if prev == o {
				return nil, errs.Field(fOwners, "entry %d: %s is listed twice", i, o)
			}
		}
		owners[i] = o
	}
	for i, e := range sel.Excluded {
		if _, err := ParseOwner(e.Owner); err != nil {
			return nil, errs.Field(fExcluded, "entry %d: owner %s", i, err.(*errs.Error).Message)
		}
		if rule, ok := checkNameSyntax(e.Name, maxLookupNameLen); !ok {
			return nil, errs.Field(fExcluded, "entry %d: the name %s", i, rule)
		}
	}
	for i, n := range sel.Allowlist {
		if rule, ok := checkNameSyntax(n, maxLookupNameLen); !ok {
			return nil, errs.Field(fAllow, "entry %d: %s", i, rule)
		}
	}
	return owners, nil
}
