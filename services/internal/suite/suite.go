// Package suite runs conformance suites: the same tests against every
// implementation of an interface (kv/kvtest, secretstore/storetest,
// audit/storetest), each test on a fresh instance.
package suite

import (
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// Run runs each test as a subtest on a new instance made by open. A
// subtest is named after its function without the "test" prefix
// (testScan: "Scan"), so that a name cannot drift from its test; a test
// that is not a named function of that form panics.
func Run[S any](t *testing.T, open func(t *testing.T) S, tests ...func(t *testing.T, s S)) {
	t.Helper()
	for _, fn := range tests {
		t.Run(Name(fn), func(t *testing.T) { fn(t, open(t)) })
	}
}

// Name is the subtest name Run gives fn.
func Name(fn any) string {
	full := runtime.FuncForPC(reflect.ValueOf(fn).Pointer()).Name()
	name, ok := strings.CutPrefix(full[strings.LastIndexByte(full, '.')+1:], "test")
	if !ok || name == "" {
		panic("suite: " + full + " is not a function named test…")
	}
	return name
}
