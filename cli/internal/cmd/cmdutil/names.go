package cmdutil

import (
	scopev1 "github.com/ozsecrets/oz/proto/gen/oz/scope/v1"

	"github.com/ozsecrets/oz/cli/internal/exitcode"
)

// Kind renders a principal kind: "user", "runner", "agent",
// "integration".
func Kind(k scopev1.PrincipalKind) string { return EnumKey(k, "unknown") }

// Role renders a team role: "admin", "member".
func Role(r scopev1.Role) string { return EnumKey(r, "unknown") }

// ParseRole parses --role: "admin" or "member" (empty is member).
func ParseRole(s string) (scopev1.Role, error) {
	switch s {
	case "member", "":
		return scopev1.Role_ROLE_MEMBER, nil
	case "admin":
		return scopev1.Role_ROLE_ADMIN, nil
	}
	return 0, exitcode.Usagef("--role: must be admin or member (got %q)", s)
}

// CheckSecretNames refuses an empty secret name given with flag. The
// rules for names belong to the server.
func CheckSecretNames(flag string, names []string) error {
	for _, n := range names {
		if n == "" {
			return exitcode.Usagef("%s: a secret name must not be empty", flag)
		}
	}
	return nil
}

// CheckSecretChanges refuses --add-secret and --remove-secret lists with
// an empty name or a name in both.
func CheckSecretChanges(add, remove []string) error {
	if err := CheckSecretNames("--add-secret", add); err != nil {
		return err
	}
	if err := CheckSecretNames("--remove-secret", remove); err != nil {
		return err
	}
	for _, a := range add {
		for _, r := range remove {
			if a == r {
				return exitcode.Usagef("--add-secret and --remove-secret both name %s: give one", a)
			}
		}
	}
	return nil
}
