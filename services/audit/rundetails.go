package audit

import (
	"strconv"
	"strings"
)

// A run.resolve names the team secrets it injected and the references it
// left unresolved in detail values, numbered from 1 in the keys:
// "injected.N" = "NAME=VERSION", "unresolved.N" = "NAME=REASON". Names are
// not put in keys because a key is at most MaxDetailKeyLength characters
// and a secret name may be 255. Events recorded before this form carry
// "injected.NAME" = "VERSION" and "unresolved.NAME" = "REASON"; the two
// cannot be confused, since a name never starts with a digit.

// InjectedDetail is the detail of the n-th injected team secret.
func InjectedDetail(n int, name string, version int64) (key, value string) {
	return DetailInjectedPrefix + strconv.Itoa(n), name + "=" + strconv.FormatInt(version, 10)
}

// UnresolvedDetail is the detail of the n-th unresolved reference.
func UnresolvedDetail(n int, name, reason string) (key, value string) {
	return DetailUnresolvedPrefix + strconv.Itoa(n), name + "=" + reason
}

// InjectedVersions returns the team secrets a run.resolve's details say
// were injected, name → value version, in either form. Malformed entries
// are skipped.
func InjectedVersions(details map[string]string) map[string]int64 {
	out := map[string]int64{}
	for k, v := range details {
		name, version, ok := injectedEntry(k, v)
		if ok {
			out[name] = version
		}
	}
	return out
}

// InjectedVersion returns the value version of the team secret name that
// a run.resolve's details say was injected, in either form.
func InjectedVersion(details map[string]string, name string) (int64, bool) {
	if v, ok := parseVersion(details[DetailInjectedPrefix+name]); ok {
		return v, true // the earlier form
	}
	for k, v := range details {
		if n, version, ok := injectedEntry(k, v); ok && n == name {
			return version, true
		}
	}
	return 0, false
}

func injectedEntry(k, v string) (name string, version int64, ok bool) {
	suffix, ok := strings.CutPrefix(k, DetailInjectedPrefix)
	if !ok || suffix == "" {
		return "", 0, false
	}
	if c := suffix[0]; c < '0' || c > '9' {
		version, ok = parseVersion(v) // the earlier form: the name in the key
		return suffix, version, ok
	}
	name, vs, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return "", 0, false
	}
	version, ok = parseVersion(vs)
	return name, version, ok
}
