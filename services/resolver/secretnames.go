package resolver

import (
	"crypto/sha256"
	"encoding/base64"
	"slices"
	"strings"

	"github.com/ozsecrets/oz/services/internal/errs"
	"github.com/ozsecrets/oz/services/secretstore"
)

// Agent identities and environments refer to secrets by name (DESIGN §5):
// the names are resolved at run start, so a referenced secret need not
// exist, and deleting and recreating a secret keeps the references. The
// names follow the secretstore's rule, so that a reference can name only a
// secret that could be created.

// MaxSecretNames bounds the secret names an identity or an environment
// lists.
const MaxSecretNames = 1000

// secretNameLimits are the secretstore's default limits: a name longer
// than the store's limit could never be created, so it is refused here too.
var secretNameLimits = secretstore.DefaultLimits()

// checkSecretName validates entry i of the list in field. The message says
// which entry, not what it holds: a confused caller may have pasted a token.
func checkSecretName(field string, i int, name string) error {
	err := secretNameLimits.ValidateName(field, name)
	if err == nil {
		return nil
	}
	msg := err.Error()
	if e, ok := err.(*errs.Error); ok {
		// The secretstore names a reserved name at the start of its
		// message ("PATH is reserved: …").
		msg = strings.TrimPrefix(e.Message, name+" ")
	}
	return errs.Field(field, "entry %d %s", i, msg)
}

// checkSecretNames validates every name of the list in field.
func checkSecretNames(field string, names []string) error {
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

// uniqueNames returns names without repeats, in first-seen order, or nil
// when there are none (so that records hold no empty lists).
func uniqueNames(names []string) []string {
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

// changes reports whether u asks for any change at all.
func (u NamesUpdate) changes() bool { return u.Set || len(u.Add) > 0 || len(u.Remove) > 0 }

// check validates u; the fields are the request's ("secret_names",
// "add_secret_names", "remove_secret_names").
func (u NamesUpdate) check() error {
	if err := checkSecretNames("secret_names", u.Names); err != nil {
		return err
	}
	if err := checkSecretNames("add_secret_names", u.Add); err != nil {
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

// apply returns cur changed by u (checked), or an error when the result
// would list more than MaxSecretNames.
func (u NamesUpdate) apply(cur []string) ([]string, error) {
	out := slices.Clone(cur)
	if u.Set {
		out = slices.Clone(u.Names)
	}
	out = append(out, u.Add...)
	out = uniqueNames(out)
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

// etagOf returns the etag of a record stored as raw.
func etagOf(raw []byte) string {
	sum := sha256.Sum256(raw)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

// maxEtagLength bounds etags in requests (ours are 16 characters).
const maxEtagLength = 128

func checkEtag(etag string) error {
	if len(etag) > maxEtagLength {
		return errs.Field("etag", "must be at most %d characters (pass back an etag unchanged)", maxEtagLength)
	}
	return nil
}

// etagMismatch is the answer to a write whose etag is not the current one.
func etagMismatch(what string) error {
	return errs.E(errs.KindFailedPrecondition, "etag mismatch: the %s changed since that etag was read; get it again and retry", what)
}
