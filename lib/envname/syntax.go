package envname

import "strconv"

// Pattern is the shape of every secret name: an environment variable name
// (DESIGN §4).
const Pattern = "[A-Za-z_][A-Za-z0-9_]*"

// MaxLength is the default bound on a secret name, in characters. A
// secretstore may be configured with another; references to secrets
// (identities, environments, runs) are held to this one.
const MaxLength = 255

// Syntax checks that name matches Pattern and has at most max characters.
// When it does not, rule says what it must be, completing "the name …":
// "is required", "must be at most 255 characters", "must match …". It
// never quotes the name: a confused caller may have pasted a token.
// Reserved names (Check) pass: they are a separate rule.
func Syntax(name string, max int) (rule string, ok bool) {
	if name == "" {
		return "is required", false
	}
	if len(name) > max {
		return "must be at most " + strconv.Itoa(max) + " characters", false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return "must match " + Pattern + " (an environment variable name: letters, digits and _, not starting with a digit)", false
		}
	}
	return "", true
}
