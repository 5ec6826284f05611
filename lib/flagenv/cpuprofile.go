package flagenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
)

// CPUProfileDirEnv names a directory into which every oz binary run through
// Main writes a CPU profile of its whole run, <dir>/<name>-<pid>.pprof, for
// `go tool pprof` (ozbench -cpuprofile-dir sets it for the system it
// starts). A profile is written when the process exits through Main (a
// signal that ends it gracefully, or its own return); not on kill -9.
const CPUProfileDirEnv = "OZ_CPUPROFILE_DIR"

// startCPUProfile starts the profile CPUProfileDirEnv asks for, if any,
// and returns what stops and writes it. Failing to start it is reported on
// stderr, never fatal: profiling is a measurement, not the job.
func startCPUProfile(name string) (stop func()) {
	dir := os.Getenv(CPUProfileDirEnv)
	if dir == "" {
		return func() {}
	}
	path := filepath.Join(dir, fmt.Sprintf("%s-%d.pprof", name, os.Getpid()))
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: cpu profile: %v\n", name, err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintf(os.Stderr, "%s: cpu profile: %v\n", name, err)
		f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
