// Package envname is the rule for the names secrets take: each becomes an
// environment variable of the agent's process (DESIGN §4), so some names
// are reserved — those that would change how the process, its loader, its
// shell, its interpreters and tools start, the variables the runner sets
// itself, and the platform's own OZ_ prefix.
//
// Reserved is the one table of them. The secretstore refuses them for new
// secrets, identities and environments refuse to list them, run
// resolution never injects them (a secret made before its name was
// reserved keeps working for reads and deletes, and ExplainRun says why
// it is left out), and the runner never sets them even if it were sent
// one. The README's table is this one.
//
// It lives in lib because it is part of the contract between the services
// and the runner (the CLI), two modules that both import lib.
package envname

import (
	"strings"
)

// A Rule reserves one name, or every name starting with a prefix, without
// regard to case (curl reads http_proxy, zsh ties path to PATH).
type Rule struct {
	Name   string // upper case
	Prefix bool   // Name is a prefix: every name starting with it
	// Why says what setting it would do, completing "it would …".
	Why string
}

// What a reserved name would change, completing "it would …".
const (
	whyLoader = "change how the dynamic loader or the C library starts every program"
	whyShell  = "change how the agent's shell starts or finds programs"
	whyInterp = "change how an interpreter or tool starts (code run at start-up)"
	whyRunner = "replace a variable the runner sets itself (its egress proxy and CA bundle)"
	whyOz     = "collide with the platform's own OZ_ variables"
)

// Reserved lists the reserved names and prefixes.
var Reserved = []Rule{
	// The dynamic loader and the C library.
	{Name: "LD_", Prefix: true, Why: whyLoader},
	{Name: "DYLD_", Prefix: true, Why: whyLoader},
	{Name: "GCONV_PATH", Why: whyLoader},
	{Name: "GLIBC_TUNABLES", Why: whyLoader},
	{Name: "LOCPATH", Why: whyLoader},
	{Name: "NLSPATH", Why: whyLoader},
	{Name: "HOSTALIASES", Why: whyLoader},
	{Name: "RESOLV_HOST_CONF", Why: whyLoader},
	{Name: "MALLOC_", Prefix: true, Why: whyLoader},
	// The shell and the process's own environment.
	{Name: "PATH", Why: whyShell},
	{Name: "HOME", Why: whyShell},
	{Name: "SHELL", Why: whyShell},
	{Name: "USER", Why: whyShell},
	{Name: "PWD", Why: whyShell},
	{Name: "IFS", Why: whyShell},
	{Name: "ENV", Why: whyShell},
	{Name: "BASH_ENV", Why: whyShell},
	{Name: "BASH_FUNC_", Prefix: true, Why: whyShell},
	{Name: "BASHOPTS", Why: whyShell},
	{Name: "SHELLOPTS", Why: whyShell},
	{Name: "CDPATH", Why: whyShell},
	{Name: "GLOBIGNORE", Why: whyShell},
	{Name: "PROMPT_COMMAND", Why: whyShell},
	{Name: "PS1", Why: whyShell},
	{Name: "PS2", Why: whyShell},
	{Name: "PS4", Why: whyShell},
	{Name: "ZDOTDIR", Why: whyShell},
	{Name: "TMPDIR", Why: whyShell},
	// Interpreters and tools that run code or commands named in a variable.
	{Name: "NODE_OPTIONS", Why: whyInterp},
	{Name: "NODE_PATH", Why: whyInterp},
	{Name: "PYTHONPATH", Why: whyInterp},
	{Name: "PYTHONSTARTUP", Why: whyInterp},
	{Name: "PYTHONHOME", Why: whyInterp},
	{Name: "PYTHONWARNINGS", Why: whyInterp},
	{Name: "PYTHONBREAKPOINT", Why: whyInterp},
	{Name: "PERL5OPT", Why: whyInterp},
	{Name: "PERL5LIB", Why: whyInterp},
	{Name: "PERLLIB", Why: whyInterp},
	{Name: "PERL5DB", Why: whyInterp},
	{Name: "RUBYOPT", Why: whyInterp},
	{Name: "RUBYLIB", Why: whyInterp},
	{Name: "JAVA_TOOL_OPTIONS", Why: whyInterp},
	{Name: "_JAVA_OPTIONS", Why: whyInterp},
	{Name: "JDK_JAVA_OPTIONS", Why: whyInterp},
	{Name: "CLASSPATH", Why: whyInterp},
	{Name: "DOTNET_STARTUP_HOOKS", Why: whyInterp},
	{Name: "PHPRC", Why: whyInterp},
	{Name: "PHP_INI_SCAN_DIR", Why: whyInterp},
	{Name: "LUA_INIT", Prefix: true, Why: whyInterp},
	{Name: "GIT_SSH_COMMAND", Why: whyInterp},
	{Name: "GIT_SSH", Why: whyInterp},
	{Name: "GIT_ASKPASS", Why: whyInterp},
	{Name: "GIT_EXEC_PATH", Why: whyInterp},
	{Name: "GIT_PROXY_COMMAND", Why: whyInterp},
	{Name: "GIT_EXTERNAL_DIFF", Why: whyInterp},
	{Name: "GIT_EDITOR", Why: whyInterp},
	{Name: "GIT_PAGER", Why: whyInterp},
	{Name: "GIT_CONFIG_", Prefix: true, Why: whyInterp},
	{Name: "SSH_ASKPASS", Why: whyInterp},
	{Name: "EDITOR", Why: whyInterp},
	{Name: "VISUAL", Why: whyInterp},
	{Name: "PAGER", Why: whyInterp},
	{Name: "LESSOPEN", Why: whyInterp},
	{Name: "LESSCLOSE", Why: whyInterp},
	{Name: "BROWSER", Why: whyInterp},
	// What the runner sets for the agent.
	{Name: "HTTP_PROXY", Why: whyRunner},
	{Name: "HTTPS_PROXY", Why: whyRunner},
	{Name: "ALL_PROXY", Why: whyRunner},
	{Name: "NO_PROXY", Why: whyRunner},
	{Name: "FTP_PROXY", Why: whyRunner},
	{Name: "SSL_CERT_FILE", Why: whyRunner},
	{Name: "SSL_CERT_DIR", Why: whyRunner},
	{Name: "NODE_EXTRA_CA_CERTS", Why: whyRunner},
	{Name: "REQUESTS_CA_BUNDLE", Why: whyRunner},
	{Name: "CURL_CA_BUNDLE", Why: whyRunner},
	{Name: "GIT_SSL_CAINFO", Why: whyRunner},
	{Name: "NODE_USE_ENV_PROXY", Why: whyRunner},
	// The platform's own.
	{Name: "OZ_", Prefix: true, Why: whyOz},
}

// Check returns the rule that reserves name, if one does. Names compare
// without regard to ASCII case.
func Check(name string) (Rule, bool) {
	upper := strings.ToUpper(name)
	for _, r := range Reserved {
		if upper == r.Name || (r.Prefix && strings.HasPrefix(upper, r.Name)) {
			return r, true
		}
	}
	return Rule{}, false
}

// IsReserved reports whether name is reserved.
func IsReserved(name string) bool {
	_, ok := Check(name)
	return ok
}

// Explain says why name, which r reserves, is refused, for error messages
// and run explanations: "NODE_OPTIONS is reserved: it would change how an
// interpreter or tool starts (code run at start-up)"; for a prefix,
// "LD_PRELOAD is reserved, as every name starting with LD_: it would …".
func (r Rule) Explain(name string) string {
	if r.Prefix {
		return name + " is reserved, as every name starting with " + r.Name + ": it would " + r.Why
	}
	return name + " is reserved: it would " + r.Why
}
