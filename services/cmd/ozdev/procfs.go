package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Who holds a port or a file, read from /proc (Linux). Off Linux, or for
// another user's processes, the answers are "unknown" (pid 0), never wrong.

// portOwner returns the pid of a process listening on addr's TCP port, or 0
// when it cannot be told.
func portOwner(addr string) int {
	if pids := portOwners(addr); len(pids) > 0 {
		return pids[0]
	}
	return 0
}

// portOwners returns the pids listening on addr's TCP port (on any address:
// a port may be bound more than once), or none when it cannot be told.
func portOwners(addr string) []int {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil
	}
	inodes := map[string]bool{}
	for _, table := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		for _, ino := range listeningInodes(table, port) {
			inodes["socket:["+ino+"]"] = true
		}
	}
	if len(inodes) == 0 {
		return nil
	}
	return pidsHolding(func(link string) bool { return inodes[link] })
}

// listeningInodes reads a /proc/net/tcp{,6} table: the socket inodes in
// LISTEN state (0A) on port.
func listeningInodes(table string, port int) []string {
	f, err := os.Open(table)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "0A" {
			continue
		}
		i := strings.LastIndexByte(fields[1], ':')
		p, err := strconv.ParseUint(fields[1][i+1:], 16, 16)
		if err != nil || int(p) != port {
			continue
		}
		out = append(out, fields[9])
	}
	return out
}

// fileHolders returns the pids that have path open.
func fileHolders(path string) []int {
	return pidsHolding(func(link string) bool { return link == path })
}

// pidsHolding scans every readable /proc/<pid>/fd for a link that matches.
func pidsHolding(match func(link string) bool) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*/fd")
	var pids []int
	for _, dir := range dirs {
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
		if err != nil {
			continue
		}
		fds, err := os.ReadDir(dir)
		if err != nil {
			continue // another user's process, or gone
		}
		for _, fd := range fds {
			if link, err := os.Readlink(filepath.Join(dir, fd.Name())); err == nil && match(link) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

// describePid names a process for a person: "ozgateway (pid 123)". Only the
// command name, never its arguments or environment (they may hold paths or
// values nobody asked to print).
func describePid(pid int) string {
	if pid <= 0 {
		return "another process (could not tell which; try `ss -ltnp` or `lsof`)"
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return fmt.Sprintf("pid %d", pid)
	}
	return fmt.Sprintf("%s (pid %d)", strings.TrimSpace(string(comm)), pid)
}

// checkFree refuses a start while anything else holds one of the ports or a
// store file's lock — typically a previous ozdev's services — naming the
// holder, so a stale system is never mistaken for the one being started.
func checkFree(procs []*proc, stores []string) error {
	var problems []string
	for _, p := range procs {
		l, err := net.Listen("tcp", p.addr)
		if err == nil {
			l.Close()
			continue
		}
		problems = append(problems, fmt.Sprintf("%s address %s is in use by %s",
			p.name, p.addr, describePid(portOwner(p.addr))))
	}
	for _, path := range stores {
		locked, err := fileLocked(path)
		if err != nil || !locked {
			continue
		}
		holder := describePid(0)
		if pids := fileHolders(path); len(pids) > 0 {
			holder = describePid(pids[0])
		}
		problems = append(problems, fmt.Sprintf("store %s is locked by %s", path, holder))
	}
	if len(problems) == 0 {
		return nil
	}
	return errors.New("cannot start: another oz secrets (an earlier `make run`?) or another program holds what this one needs:\n  " +
		strings.Join(problems, "\n  ") +
		"\nStop it first, or choose other addresses and data with OZ_GATEWAY_ADDR, OZ_RESOLVER_LISTEN, OZ_SECRETSTORE_LISTEN, OZ_AUDIT_LISTEN and OZ_DATA_DIR.")
}
