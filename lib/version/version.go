// Package version says which build a binary is: its module's version, the
// commit and the commit's time, read from the build information the Go
// toolchain embeds (go build stamps the version control state of the
// checkout it builds from). Every oz binary prints it for --version and
// `version`.
package version

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Info is the build of the running binary.
type Info struct {
	Module    string // the main module's path
	Version   string // its version: a tag, a pseudo-version, or "(devel)"
	Commit    string // the vcs.revision stamped, or ""
	Time      string // the commit's time (vcs.time, RFC 3339), or ""
	Modified  bool   // built from a checkout with uncommitted changes
	GoVersion string
}

// Get returns the running binary's Info.
func Get() Info {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return Info{Version: "(unknown)"}
	}
	return fromBuildInfo(bi)
}

func fromBuildInfo(bi *debug.BuildInfo) Info {
	in := Info{Module: bi.Main.Path, Version: bi.Main.Version, GoVersion: bi.GoVersion}
	if in.Version == "" {
		in.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Commit = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	return in
}

// Short is the version alone, with the commit when the version does not
// already name it: what `oz --version` prints after the name.
func (in Info) Short() string {
	v := in.Version
	if c := in.shortCommit(); c != "" && !strings.Contains(v, c) {
		v += " (" + c + dirty(in.Modified) + ")"
	}
	return v
}

// String is the whole build description, on one line.
func (in Info) String() string {
	var b strings.Builder
	b.WriteString(in.Version)
	if c := in.shortCommit(); c != "" {
		fmt.Fprintf(&b, ", commit %s%s", c, dirty(in.Modified))
	}
	if in.Time != "" {
		fmt.Fprintf(&b, ", built from a commit of %s", in.Time)
	}
	if in.GoVersion != "" {
		fmt.Fprintf(&b, ", %s", in.GoVersion)
	}
	return b.String()
}

func (in Info) shortCommit() string {
	if len(in.Commit) > 12 {
		return in.Commit[:12]
	}
	return in.Commit
}

func dirty(modified bool) string {
	if modified {
		return ", modified"
	}
	return ""
}
