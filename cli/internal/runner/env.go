package runner

import (
	"slices"
	"strings"

	"github.com/ozsecrets/oz/lib/envname"
)

// Env returns the child's environment: inherited, without the variables
// named in drop (the runner's own credentials), with every var added but
// those whose names are reserved (envname: the server never sends one;
// should one come, it is not set, and is listed in reserved). A var
// replaces an inherited variable of the same name; shadowed lists those
// names, in the order of vars. Names compare exactly, as the environment
// does on Unix. A host-bound var (Binding set) is never set: its value is
// for the egress proxy only (StartEgress gives a placeholder instead).
func Env(inherited []string, vars []Var, drop []string) (env, shadowed, reserved []string) {
	secret := map[string]bool{}
	kept := vars[:0:0]
	for _, v := range vars {
		if v.Binding != nil {
			// A bound value never goes to the agent: StartEgress gives a
			// placeholder var (unbound) in its place.
			continue
		}
		if envname.IsReserved(v.Name) {
			reserved = append(reserved, v.Name)
			continue
		}
		secret[v.Name] = true
		kept = append(kept, v)
	}
	vars = kept
	found := map[string]bool{}
	env = make([]string, 0, len(inherited)+len(vars))
	for _, kv := range inherited {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case slices.Contains(drop, name):
		case secret[name]:
			found[name] = true
		default:
			env = append(env, kv)
		}
	}
	for _, v := range vars {
		env = append(env, v.Name+"="+string(v.Value))
		if found[v.Name] {
			shadowed = append(shadowed, v.Name)
		}
	}
	return env, shadowed, reserved
}
