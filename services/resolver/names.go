package resolver

import (
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ozsecrets/oz/lib/envname"
	"github.com/ozsecrets/oz/lib/termtext"
	"github.com/ozsecrets/oz/services/internal/errs"
)

// Agent identities, environments and runs refer to secrets by name (DESIGN
// §5): the names are resolved at run start, so a referenced secret need
// not exist, and deleting and recreating a secret keeps the references.
// The names follow the rule of secret names (envname: the syntax, the
// default length bound and the reserved names), so that a reference can
// name only a secret that could be created.

// MaxSecretNames bounds the secret names an identity, an environment or a
// run lists.
const MaxSecretNames = 1000

// checkSecretName validates entry i of the list in field. The message says
// which entry, and never quotes a malformed name: a confused caller may
// have pasted a token.
func checkSecretName(field string, i int, name string) error {
	if rule, ok := envname.Syntax(name, envname.MaxLength); !ok {
		return errs.Field(field, "entry %d %s", i, rule)
	}
	if r, ok := envname.Check(name); ok {
		// "PATH is reserved: …", said of the entry.
		why := strings.TrimPrefix(r.Explain(name), name+" ")
		return errs.Field(field, "entry %d %s (the reserved names are listed in the README's Rules)", i, why)
	}
	return nil
}

// CheckSecretNames validates every name of the list in field.
func CheckSecretNames(field string, names []string) error {
	if len(names) > MaxSecretNames {
		return errs.Field(field, "must list at most %d names (got %d)", MaxSecretNames, len(names))
	}
	for i, n := range names {
		if err := checkSecretName(field, i, n); err != nil {
			return err
		}
	}
	return nil
}

// UniqueNames returns names without repeats, in first-seen order, or nil
// when there are none (so that records hold no empty lists).
func UniqueNames(names []string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// NamesUpdate says how an Update changes a list of secret names: when Set,
// the list becomes Names; then Add is appended (names already listed are
// kept where they are) and Remove taken out (names not listed are
// ignored). A name may not be both added and removed.
type NamesUpdate struct {
	Set    bool
	Names  []string
	Add    []string
	Remove []string
}

// Changes reports whether u asks for any change at all.
func (u NamesUpdate) Changes() bool { return u.Set || len(u.Add) > 0 || len(u.Remove) > 0 }

// Check validates u; the fields are the request's ("secret_names",
// "add_secret_names", "remove_secret_names").
func (u NamesUpdate) Check() error {
	if err := CheckSecretNames("secret_names", u.Names); err != nil {
		return err
	}
	if err := CheckSecretNames("add_secret_names", u.Add); err != nil {
		return err
	}
	// A name is removed as it is listed: even one that the rules refuse
	// now, so that a list made under older rules can still be cleaned.
	if len(u.Remove) > MaxSecretNames {
		return errs.Field("remove_secret_names", "must list at most %d names (got %d)", MaxSecretNames, len(u.Remove))
	}
	for i, n := range u.Remove {
		if n == "" {
			return errs.Field("remove_secret_names", "entry %d is required", i)
		}
	}
	for i, r := range u.Remove {
		if slices.Contains(u.Add, r) {
			return errs.Field("remove_secret_names", "entry %d is also in add_secret_names: give each name in one of them", i)
		}
	}
	return nil
}

// Apply returns cur changed by u (checked), or an error when the result
// would list more than MaxSecretNames.
func (u NamesUpdate) Apply(cur []string) ([]string, error) {
	out := slices.Clone(cur)
	if u.Set {
		out = slices.Clone(u.Names)
	}
	out = append(out, u.Add...)
	out = UniqueNames(out)
	out = slices.DeleteFunc(out, func(n string) bool { return slices.Contains(u.Remove, n) })
	if len(out) > MaxSecretNames {
		return nil, errs.Field("add_secret_names", "the list would hold %d names; at most %d are allowed", len(out), MaxSecretNames)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}

// Etags (AIP-154) of identities and environments are derived from the
// stored record: any change (and every change sets the update time)
// changes the etag, and no etag needs storing. A conditional write then
// holds the record to the very bytes the etag was computed from.

// EtagOf returns the etag of a record stored as raw.
func EtagOf(raw []byte) string {
	sum := sha256.Sum256(raw)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// maxEtagLength bounds etags in requests (ours are 16 characters).
const maxEtagLength = 128

// CheckEtag checks the length of an etag given in a request.
func CheckEtag(etag string) error {
	if len(etag) > maxEtagLength {
		return errs.Field("etag", "must be at most %d characters (pass back an etag unchanged)", maxEtagLength)
	}
	return nil
}

// EtagMismatch is the answer to a write whose etag is not the current one.
func EtagMismatch(what string) error {
	return errs.E(errs.KindFailedPrecondition, "etag mismatch: the %s changed since that etag was read; get it again and retry", what)
}

// MaxDescriptionLength is the longest description (of a token, an
// identity, an environment, an integration), in characters.
const MaxDescriptionLength = 1024

// CheckDescription checks a description given in field "description": at
// most MaxDescriptionLength characters of one line of printable text
// (termtext: it is shown to teammates on their terminals).
func CheckDescription(s string) error {
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxDescriptionLength {
		return errs.Field("description", "must be valid UTF-8 of at most %d characters", MaxDescriptionLength)
	}
	if termtext.HasUnsafe(s) {
		return errs.Field("description", "%s (%s)", termtext.Rule, termtext.Explain(s))
	}
	return nil
}
