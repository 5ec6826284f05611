package deploy_test

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// service is what the manifests must say about one deployable service.
type service struct {
	bin      string // binary (and Dockerfile.<bin>, image ozsecrets/<bin>)
	port     int    // the mutual-TLS gRPC port (gateway: the public TLS port)
	health   int    // the plain-text health port (OZ_HEALTH_LISTEN); 0: none
	metrics  int    // the plain-HTTP Prometheus port (--metrics-listen) in Kubernetes; 0: none
	stateful bool   // has a store (OZ_STORE)
	public   bool   // the one address reachable from outside
}

var services = map[string]service{
	"resolver":    {bin: "ozresolverd", port: 7451, health: 7461, metrics: 9090, stateful: true},
	"secretstore": {bin: "ozsecretstored", port: 7450, health: 7460, metrics: 9090, stateful: true},
	"audit":       {bin: "ozauditd", port: 7452, health: 7462, metrics: 9090, stateful: true},
	"gateway":     {bin: "ozgateway", port: 7443, metrics: 9090, public: true},
}

// callers says who may open a connection to whom (DESIGN §2): the
// NetworkPolicies must allow exactly these, and the compose and Kubernetes
// configuration gives each caller the callee's address.
var callers = map[string][]string{
	"resolver":    {"gateway", "secretstore", "audit"},
	"secretstore": {"gateway", "resolver", "audit"},
	"audit":       {"gateway", "resolver", "secretstore"},
}

// monitoringNamespace is the namespace allowed to scrape the services'
// metrics ports (and only those): its automatic kubernetes.io/metadata.name
// label, as a NetworkPolicy namespaceSelector.
const monitoringNamespace = "monitoring"

// callees inverts callers.
func callees(name string) []string {
	var out []string
	for callee, from := range callers {
		for _, c := range from {
			if c == name {
				out = append(out, callee)
			}
		}
	}
	sort.Strings(out)
	return out
}

// pending are the OZ_… variables the manifests set before the binaries read
// them, each named in deploy/README.md with the change that brings it; none
// today. Any other name must be in the binary's --help.
var pending = map[string][]string{
	"ozresolverd":    nil,
	"ozsecretstored": nil,
	"ozauditd":       nil,
	"ozgateway":      nil,
}

// help is what a binary's --help says: its flags and the OZ_… variables.
type help struct {
	text  string
	flags map[string]string // flag name → its usage text
	env   map[string]bool
}

var (
	flagLineRE = regexp.MustCompile(`^  -([A-Za-z0-9][A-Za-z0-9_-]*)(\s|$)`)
	envNameRE  = regexp.MustCompile(`\bOZ_[A-Z0-9_]*[A-Z0-9]\b`)
)

// parseHelp reads the usage Go's flag package prints: "  -name type" lines,
// each followed by its indented usage.
func parseHelp(text string) help {
	h := help{text: text, flags: map[string]string{}, env: map[string]bool{}}
	current := ""
	for line := range strings.SplitSeq(text, "\n") {
		if m := flagLineRE.FindStringSubmatch(line); m != nil {
			current = m[1]
			h.flags[current] += line + "\n"
			continue
		}
		if current != "" && strings.HasPrefix(line, "    ") {
			h.flags[current] += line + "\n"
		} else {
			current = ""
		}
	}
	for _, n := range envNameRE.FindAllString(text, -1) {
		h.env[n] = true
	}
	return h
}

// checkEnv reports the names that bin neither reads (per its --help) nor is
// expected to read soon (pending).
func checkEnv(bin string, names []string) error {
	h, ok := helps[bin]
	if !ok {
		return fmt.Errorf("no binary %q", bin)
	}
	var errs []string
	for _, n := range names {
		if !strings.HasPrefix(n, "OZ_") {
			errs = append(errs, fmt.Sprintf("%s: variable %s is not an OZ_ variable", bin, n))
			continue
		}
		if !h.env[n] && !contains(pending[bin], n) {
			errs = append(errs, fmt.Sprintf("%s: %s is not in `%s --help` (and is not a pending name)", bin, n, bin))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// checkFlags reports command-line flags ("--name" or "--name=value") that
// bin does not have.
func checkFlags(bin string, args []string) error {
	h := helps[bin]
	var errs []string
	for _, a := range args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name := strings.TrimLeft(a, "-")
		name, _, _ = strings.Cut(name, "=")
		if _, ok := h.flags[name]; !ok {
			errs = append(errs, fmt.Sprintf("%s: flag --%s is not in `%s --help`", bin, name, bin))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
