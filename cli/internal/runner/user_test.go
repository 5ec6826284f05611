package runner_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/cli/internal/runner"
)

func TestParseAsUser(t *testing.T) {
	tests := []struct {
		in      string
		want    runner.User
		wantErr string // in the error; "" for none
	}{
		{"1001", runner.User{UID: 1001, GID: 1001}, ""},
		{"1001:2002", runner.User{UID: 1001, GID: 2002}, ""},
		{"65534:65534", runner.User{UID: 65534, GID: 65534}, ""},
		{"4294967294", runner.User{UID: 4294967294, GID: 4294967294}, ""},
		{"", runner.User{}, "--as-user \"\": UID is empty"},
		{":1001", runner.User{}, "UID is empty"},
		{"1001:", runner.User{}, "GID is empty"},
		{"alice", runner.User{}, `UID "alice" is not a decimal number`},
		{"1001:staff", runner.User{}, `GID "staff" is not a decimal number`},
		{"-1", runner.User{}, "is not a decimal number"},
		{"+1001", runner.User{}, "is not a decimal number"},
		{" 1001", runner.User{}, "is not a decimal number"},
		{"1001:1001:1001", runner.User{}, "is not a decimal number"},
		{"4294967296", runner.User{}, "is not a decimal number"},
		{"0", runner.User{}, "UID 0 is root"},
		{"0:1001", runner.User{}, "UID 0 is root"},
		{"1001:0", runner.User{}, "GID 0 is root's group"},
		{"4294967295", runner.User{}, "not a usable id"},
		{"1001:4294967295", runner.User{}, "not a usable id"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := runner.ParseAsUser(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "--as-user") {
					t.Errorf("got %v, %v; want an error naming --as-user and saying %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if *got != tt.want {
				t.Errorf("got %+v, want %+v", *got, tt.want)
			}
		})
	}
}

// Files owned by the runner's user (the test's) or the agent's, with each
// mode: ReadableBy must say true whenever the agent can read the file,
// which agentReader checks when the tests run as root.
func TestReadableBy(t *testing.T) {
	dir, canRead := agentReader(t)
	runnerUID, runnerGID := uint32(os.Getuid()), uint32(os.Getgid())
	const agentID = 65534
	if runnerUID == agentID || runnerGID == agentID {
		t.Skipf("the tests run as uid %d or gid %d, the agent's", agentID, agentID)
	}
	agent := runner.User{UID: agentID, GID: agentID}
	type who int
	const (
		runnerOwns who = iota
		agentOwns
	)
	tests := []struct {
		name         string
		mode         os.FileMode
		owner, group who
		want         bool
	}{
		{"RunnerOnly", 0o600, runnerOwns, runnerOwns, false},
		{"RunnerReadOnly", 0o400, runnerOwns, runnerOwns, false},
		{"GroupReadableRunnerGroup", 0o640, runnerOwns, runnerOwns, false},
		{"GroupReadableAgentGroup", 0o640, runnerOwns, agentOwns, true},
		{"GroupWriteOnlyAgentGroup", 0o620, runnerOwns, agentOwns, false},
		{"NoGroupBitsAgentGroup", 0o600, runnerOwns, agentOwns, false},
		{"OtherReadable", 0o644, runnerOwns, runnerOwns, true},
		{"OtherReadOnly", 0o604, runnerOwns, runnerOwns, true},
		{"OtherWriteOnly", 0o602, runnerOwns, runnerOwns, false},
		{"OtherExecuteOnly", 0o711, runnerOwns, runnerOwns, false},
		{"OwnedByAgent", 0o600, agentOwns, agentOwns, true},
		// The owner can chmod it: readable, whatever the mode says.
		{"OwnedByAgentNoBits", 0o000, agentOwns, runnerOwns, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uid, gid := runnerUID, runnerGID
			if tt.owner == agentOwns {
				uid = agentID
			}
			if tt.group == agentOwns {
				gid = agentID
			}
			if (uid != runnerUID || gid != runnerGID) && os.Geteuid() != 0 {
				t.Skipf("giving a file to uid:gid %d:%d needs root", uid, gid)
			}
			path := filepath.Join(dir, tt.name)
			if err := os.WriteFile(path, []byte("oz_runner_token"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(path, int(uid), int(gid)); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			got, err := runner.ReadableBy(path, agent)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if canRead != nil && canRead(path) && !got {
				t.Errorf("uid %d can read it, but ReadableBy says false", agentID)
			}
		})
	}

	t.Run("Symlink", func(t *testing.T) {
		target := filepath.Join(dir, "target")
		if err := os.WriteFile(target, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, "link")
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if got, err := runner.ReadableBy(link, agent); err != nil || !got {
			t.Errorf("got %v, %v; want true for a link to an other-readable file", got, err)
		}
	})

	t.Run("NotExist", func(t *testing.T) {
		_, err := runner.ReadableBy(filepath.Join(dir, "missing"), agent)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("got %v, want fs.ErrNotExist", err)
		}
	})
}

func TestCheckPrivate(t *testing.T) {
	dir := t.TempDir()
	agent := runner.User{UID: 65534, GID: 65534}
	if uint32(os.Getuid()) == agent.UID {
		t.Skip("the tests run as uid 65534, the agent's")
	}
	token := filepath.Join(dir, "token")
	config := filepath.Join(dir, "config")
	if err := os.WriteFile(token, []byte("oz_runner_token"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(config, []byte("token: oz_runner_token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(config, 0o644); err != nil {
		t.Fatal(err)
	}

	if err := runner.CheckPrivate(agent, "", filepath.Join(dir, "missing"), token); err != nil {
		t.Errorf("private token, missing and empty paths: got %v, want nil", err)
	}
	err := runner.CheckPrivate(agent, token, config)
	if err == nil {
		t.Fatal("an other-readable config: got nil, want an error")
	}
	for _, want := range []string{"--as-user 65534:65534", config, "readable by the agent's user", "mode 0644", "chmod 600"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got %q, want it to say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "oz_runner_token") {
		t.Errorf("got %q: the error holds the file's contents", err)
	}
}
