package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// inProcess runs the go test benchmark bench (a full sub-benchmark name,
// such as "CreateBolt/audit=on/goroutines=64") of the services package pkg
// ("./secretstore/kvstore/"), in the same run as the measurements through
// the gateway, and returns its throughput in operations per second: what
// the same work costs with no hop, for the ratios. It needs the source tree
// (ozbench runs from it: `make bench`).
func inProcess(pkg, bench string) (float64, error) {
	gowork, err := exec.Command("go", "env", "GOWORK").Output()
	if err != nil {
		return 0, fmt.Errorf("go env GOWORK: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(gowork)))
	if root == "." {
		return 0, fmt.Errorf("in-process baseline %s: run ozbench from the source tree (make bench)", bench)
	}
	// -bench takes one regexp per level of the name, anchored.
	var levels []string
	for i, l := range strings.Split(bench, "/") {
		if i == 0 {
			l = "Benchmark" + l // -bench matches the function's whole name
		}
		levels = append(levels, "^"+regexp.QuoteMeta(l)+"$")
	}
	cmd := exec.Command("go", "test", "-run", "^$", "-bench", strings.Join(levels, "/"), "-benchtime", "2s", pkg)
	cmd.Dir = filepath.Join(root, "services")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("in-process baseline %s: %v\n%s", bench, err, out.String())
	}
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark"+bench) {
			continue
		}
		for i := 1; i+1 < len(f); i++ {
			if f[i+1] == "ns/op" {
				ns, err := strconv.ParseFloat(f[i], 64)
				if err != nil || ns <= 0 {
					break
				}
				return 1e9 / ns, nil
			}
		}
	}
	return 0, fmt.Errorf("in-process baseline %s: no result in:\n%s", bench, out.String())
}
