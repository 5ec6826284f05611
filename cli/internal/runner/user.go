package runner

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// User is the numeric user and group the agent runs as (Command.AsUser,
// `oz exec --as-user UID[:GID]`). It is not root, and not root's group.
//
// Give agents a uid of their own that nothing else runs as, and one per
// concurrent run: a process can read the environment and memory of every
// other process of its uid, so two runs under one uid can read each
// other's secrets, and an agent running as a shared uid such as nobody
// (65534) can read every other process that runs as nobody.
type User struct {
	UID, GID uint32
}

// String returns "UID:GID".
func (u User) String() string { return fmt.Sprintf("%d:%d", u.UID, u.GID) }

// noID is (uid_t)-1, which setresuid and friends read as "unchanged".
const noID = 1<<32 - 1

// ParseAsUser parses the value of --as-user: a numeric UID, or UID:GID;
// the GID defaults to the UID. Names are not accepted, so that what runs
// is exactly what was written. Root (uid 0) and root's group (gid 0) are
// refused: an agent in either can read what the runner keeps from it.
func ParseAsUser(s string) (*User, error) {
	uidText, gidText, hasGID := strings.Cut(s, ":")
	uid, err := parseID(uidText)
	if err != nil {
		return nil, fmt.Errorf("--as-user %q: UID %w; want UID or UID:GID, such as 1001 or 1001:1001", s, err)
	}
	gid := uid
	if hasGID {
		if gid, err = parseID(gidText); err != nil {
			return nil, fmt.Errorf("--as-user %q: GID %w; want UID or UID:GID, such as 1001 or 1001:1001", s, err)
		}
	}
	u := &User{UID: uid, GID: gid}
	if err := u.validate(); err != nil {
		return nil, err
	}
	return u, nil
}

func parseID(s string) (uint32, error) {
	if s == "" {
		return 0, errors.New("is empty")
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("%q is not a decimal number from 1 to %d", s, noID-1)
	}
	return uint32(n), nil
}

// validate applies the rules ParseAsUser states to a User made in code.
func (u User) validate() error {
	switch {
	case u.UID == 0:
		return fmt.Errorf("--as-user %s: UID 0 is root; the agent must run as a user other than root", u)
	case u.GID == 0:
		return fmt.Errorf("--as-user %s: GID 0 is root's group; the agent must run in another group", u)
	case u.UID == noID || u.GID == noID:
		return fmt.Errorf("--as-user %s: %d is not a usable id: the kernel reads it as \"unchanged\"", u, uint32(noID))
	}
	return nil
}

// ReadableBy reports whether u may be able to read the file at path (a
// symbolic link is followed), judged by the file's owner, group and mode:
// true when u owns it (an owner can chmod it, whatever its mode says),
// when it is readable by others, or when it is group-readable and its
// group is u's (u has no supplementary groups when it runs an agent). On
// Linux, a file with a POSIX access ACL whose mask allows reading counts
// as readable: some entry may grant it to u.
//
// It errs towards true: it ignores whether u can reach the file through
// its directories, and the kernel's rule that the owner's bits, then the
// group's, decide alone. It returns an error if the file cannot be
// examined (fs.ErrNotExist if it does not exist).
func ReadableBy(path string, u User) (bool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false, fmt.Errorf("%s: no owner information", path)
	}
	mode := fi.Mode().Perm()
	switch {
	case st.Uid == u.UID, mode&0o004 != 0, mode&0o040 != 0 && st.Gid == u.GID:
		return true, nil
	case mode&0o040 == 0:
		return false, nil
	}
	// Group-readable by another group: with an ACL, the group bits are its
	// mask, and a named entry may grant u reading.
	acl, err := hasAccessACL(path)
	if err != nil {
		return false, fmt.Errorf("%s: read ACL: %w", path, err)
	}
	return acl, nil
}

// CheckPrivate returns an error naming the first of paths that u may be
// able to read (see ReadableBy). The runner calls it before starting an
// agent as u with the files that hold its credential (token file, config
// file): they must be readable by the runner alone. Empty paths and files
// that do not exist are skipped.
func CheckPrivate(u User, paths ...string) error {
	for _, p := range paths {
		if p == "" {
			continue
		}
		readable, err := ReadableBy(p, u)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("--as-user %s: check %s: %w", u, p, err)
		}
		if readable {
			return fmt.Errorf("--as-user %s: %s is readable by the agent's user %s (%s); make it readable by the runner's user alone (chmod 600, owned by the runner)", u, p, u, describe(p))
		}
	}
	return nil
}

// describe says who owns path and its mode, for an error message.
func describe(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return err.Error()
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Sprintf("mode %04o", fi.Mode().Perm())
	}
	return fmt.Sprintf("owner %d:%d, mode %04o", st.Uid, st.Gid, fi.Mode().Perm())
}
