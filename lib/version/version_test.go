package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestFromBuildInfo(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/ozsecrets/oz/cli", Version: "v0.0.0-20261207083501-3c42cf3a1b2c+dirty"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "3c42cf3a1b2c4d5e6f708192a3b4c5d6e7f80912"},
			{Key: "vcs.time", Value: "2026-12-07T08:35:01Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	in := fromBuildInfo(bi)
	if in.Commit != "3c42cf3a1b2c4d5e6f708192a3b4c5d6e7f80912" || in.Time != "2026-12-07T08:35:01Z" || !in.Modified {
		t.Fatalf("fromBuildInfo = %+v", in)
	}
	// The pseudo-version names the commit already: not twice.
	if got := in.Short(); got != "v0.0.0-20261207083501-3c42cf3a1b2c+dirty" {
		t.Errorf("Short() = %q", got)
	}
	for _, want := range []string{"commit 3c42cf3a1b2c, modified", "2026-12-07T08:35:01Z", "go1.26.8"} {
		if s := in.String(); !strings.Contains(s, want) {
			t.Errorf("String() = %q, want it to contain %q", s, want)
		}
	}

	devel := fromBuildInfo(&debug.BuildInfo{Main: debug.Module{Path: "x"}, Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abcdef0123456789"}}})
	if got := devel.Short(); got != "(devel) (abcdef012345)" {
		t.Errorf("Short() of a devel build = %q", got)
	}
}

// The test binary itself has build information: Get never says dev.
func TestGet(t *testing.T) {
	in := Get()
	if in.Version == "" || in.Version == "dev" || in.GoVersion == "" {
		t.Errorf("Get() = %+v", in)
	}
}
