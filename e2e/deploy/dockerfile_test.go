package deploy_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ozsecrets/oz/e2e/harness"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, ...
	args string
	line int
}

// parseDockerfile splits a Dockerfile into instructions. Comment lines
// (also inside a continued instruction) are dropped, as Docker does.
func parseDockerfile(text string) ([]instruction, error) {
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if cont, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		out = append(out, instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start})
		cur.Reset()
	}
	if cur.Len() > 0 {
		return nil, errors.New("the last instruction ends with a line continuation")
	}
	if len(out) == 0 || out[0].cmd != "FROM" {
		return nil, errors.New("does not start with FROM")
	}
	for _, in := range out {
		if !knownInstructions[in.cmd] {
			return nil, fmt.Errorf("line %d: unknown instruction %q", in.line, in.cmd)
		}
	}
	return out, nil
}

var knownInstructions = map[string]bool{
	"FROM": true, "RUN": true, "CMD": true, "LABEL": true, "EXPOSE": true, "ENV": true, "ADD": true,
	"COPY": true, "ENTRYPOINT": true, "VOLUME": true, "USER": true, "WORKDIR": true, "ARG": true,
	"ONBUILD": true, "STOPSIGNAL": true, "HEALTHCHECK": true, "SHELL": true,
}

// dockerfileRules is what one image's Dockerfile must do.
type dockerfileRules struct {
	bin       string   // binary built and run
	pkg       string   // its package, e.g. ./services/cmd/ozresolverd
	port      int      // EXPOSEd port; 0: none
	minimal   bool     // final stage distroless static or scratch
	workspace []string // go.work's module folders, each to be copied
}

var (
	finalBaseRE = regexp.MustCompile(`^(gcr\.io/distroless/static(-debian\d+)?(:nonroot|:latest|:debug-nonroot)?@sha256:[0-9a-f]{64}|scratch)$`)
	goBaseRE    = regexp.MustCompile(`^golang:1\.26@sha256:[0-9a-f]{64}$`)
	digestRE    = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)
)

// checkDockerfile applies r to a parsed Dockerfile.
func checkDockerfile(ins []instruction, r dockerfileRules) error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	last := 0
	for i, in := range ins {
		if in.cmd == "FROM" {
			last = i
		}
	}
	build, final := ins[:last], ins[last:]

	// The builder: Go 1.26 from the workspace, static and stripped.
	if from := strings.Fields(ins[0].args); len(from) == 0 || !goBaseRE.MatchString(from[0]) {
		fail("the build stage is %q, want golang:1.26@sha256:… (pinned by digest)", ins[0].args)
	}
	// Every base image pinned by digest: a rebuild gets the same bases.
	stages := map[string]bool{}
	for _, in := range ins {
		if in.cmd != "FROM" {
			continue
		}
		f := strings.Fields(in.args)
		for len(f) > 0 && strings.HasPrefix(f[0], "--") {
			f = f[1:]
		}
		if len(f) == 0 {
			continue
		}
		if img := f[0]; img != "scratch" && !stages[img] && !digestRE.MatchString(img) {
			fail("line %d: FROM %s, want it pinned by digest (IMAGE:TAG@sha256:…)", in.line, img)
		}
		if len(f) == 3 && strings.EqualFold(f[1], "AS") {
			stages[f[2]] = true
		}
	}
	built := false
	for _, in := range build {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags="-s -w"`, "-o /out/" + r.bin + " ", r.pkg} {
				if !strings.Contains(in.args+" ", want) {
					fail("line %d: go build lacks %s", in.line, want)
				}
			}
			built = true
		}
	}
	if !built {
		fail("no RUN go build of %s", r.pkg)
	}
	copied := map[string]bool{}
	for _, in := range build {
		if in.cmd == "COPY" {
			for _, f := range strings.Fields(in.args) {
				copied[strings.TrimPrefix(filepath.Clean(f), "./")] = true
			}
		}
	}
	if !copied["go.work"] {
		fail("the build stage does not copy go.work")
	}
	for _, dir := range r.workspace {
		if !copied[filepath.Join(dir, "go.mod")] && !copied[dir] {
			fail("the build stage does not copy %s/go.mod (go.work uses it)", dir)
		}
	}

	// The image: minimal, non-root to the end.
	base := strings.Fields(final[0].args)
	if len(base) == 0 {
		fail("empty final FROM")
	} else if r.minimal && !finalBaseRE.MatchString(base[0]) {
		fail("final stage is FROM %s, want gcr.io/distroless/static-debian12:nonroot@sha256:… or scratch", base[0])
	}
	lastIn := final[len(final)-1]
	if lastIn.cmd != "USER" {
		fail("the Dockerfile ends with %s, want USER (non-root)", lastIn.cmd)
	} else if !nonRootUser(lastIn.args) {
		fail("the final USER is %q, want a non-root user (65532:65532)", lastIn.args)
	}
	for _, in := range final {
		switch in.cmd {
		case "USER":
			if !nonRootUser(in.args) {
				fail("line %d: USER %s in the final stage", in.line, in.args)
			}
		case "EXPOSE":
			if r.port == 0 {
				fail("line %d: EXPOSE in an image that serves nothing", in.line)
			} else if in.args != strconv.Itoa(r.port) && in.args != strconv.Itoa(r.port)+"/tcp" {
				fail("line %d: EXPOSE %s, want %d", in.line, in.args, r.port)
			}
		case "ENTRYPOINT":
			if want := fmt.Sprintf(`["/usr/local/bin/%s"]`, r.bin); in.args != want {
				fail("line %d: ENTRYPOINT %s, want %s", in.line, in.args, want)
			}
		}
	}
	if r.port != 0 && !hasInstruction(final, "EXPOSE") {
		fail("no EXPOSE %d", r.port)
	}
	if !hasInstruction(final, "ENTRYPOINT") {
		fail("no ENTRYPOINT")
	}
	if !hasInstruction(final, "COPY", "--from=build /out/"+r.bin+" /usr/local/bin/"+r.bin) {
		fail("the final stage does not copy /out/%s to /usr/local/bin/%s", r.bin, r.bin)
	}
	return errors.Join(errs...)
}

func hasInstruction(ins []instruction, cmd string, args ...string) bool {
	for _, in := range ins {
		if in.cmd == cmd && (len(args) == 0 || in.args == args[0]) {
			return true
		}
	}
	return false
}

// nonRootUser accepts a numeric non-zero UID (and GID), or "nonroot".
func nonRootUser(s string) bool {
	user, group, _ := strings.Cut(strings.TrimSpace(s), ":")
	ok := func(id string) bool {
		if id == "nonroot" {
			return true
		}
		n, err := strconv.Atoi(id)
		return err == nil && n > 0
	}
	return ok(user) && (group == "" || ok(group))
}

// workspaceDirs reads the `use` folders of go.work.
func workspaceDirs(t *testing.T) []string {
	text := string(readFile(t, filepath.Join(root, "go.work")))
	var dirs []string
	inUse := false
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "use ("):
			inUse = true
		case inUse && line == ")":
			inUse = false
		case inUse && line != "":
			dirs = append(dirs, filepath.Clean(line))
		case strings.HasPrefix(line, "use "):
			dirs = append(dirs, filepath.Clean(strings.TrimPrefix(line, "use ")))
		}
	}
	if len(dirs) == 0 {
		t.Fatal("go.work uses no module")
	}
	return dirs
}

// deployedBinaries are the binaries that get an image: all but the local
// all-in-one launcher.
func deployedBinaries() map[string]string {
	out := map[string]string{}
	for bin, pkg := range harness.Binaries {
		if bin != "ozdev" {
			out[bin] = pkg
		}
	}
	return out
}

func rulesFor(t *testing.T, bin string) dockerfileRules {
	r := dockerfileRules{bin: bin, pkg: deployedBinaries()[bin], minimal: true, workspace: workspaceDirs(t)}
	for _, s := range services {
		if s.bin == bin {
			r.port = s.port
		}
	}
	return r
}

func TestDockerfiles(t *testing.T) {
	for bin := range deployedBinaries() {
		t.Run(bin, func(t *testing.T) {
			path := deployPath("docker", "Dockerfile."+bin)
			ins, err := parseDockerfile(string(readFile(t, path)))
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			if err := checkDockerfile(ins, rulesFor(t, bin)); err != nil {
				t.Errorf("%s:\n%v", path, err)
			}
			// Its ENV names are the binary's; the listen address is the
			// EXPOSEd port on every interface.
			env := dockerfileEnv(ins)
			if err := checkEnv(bin, sortedKeys(env)); err != nil {
				t.Errorf("%s: %v", path, err)
			}
			if r := rulesFor(t, bin); r.port != 0 {
				listenVar := envNameRE.FindString(helps[bin].flags["listen"])
				if got := env[listenVar]; got != fmt.Sprintf(":%d", r.port) {
					t.Errorf("%s: ENV %s=%q, want \":%d\"", path, listenVar, got, r.port)
				}
			}
		})
	}
}

// The development PKI image builds ozsecretstored (for the keyring) and runs
// the script as a non-root user; it needs a shell, so it is not minimal.
func TestPKIDockerfile(t *testing.T) {
	path := deployPath("docker", "Dockerfile.pki")
	ins, err := parseDockerfile(string(readFile(t, path)))
	if err != nil {
		t.Fatal(err)
	}
	r := rulesFor(t, "ozsecretstored")
	r.minimal, r.port = false, 0
	err = checkDockerfile(ins, r)
	// Its entrypoint is the script, not the binary.
	var rest []error
	for _, e := range unwrapAll(err) {
		if !strings.Contains(e.Error(), "ENTRYPOINT") {
			rest = append(rest, e)
		}
	}
	if len(rest) > 0 {
		t.Errorf("%s:\n%v", path, errors.Join(rest...))
	}
	if !hasInstruction(ins, "COPY", "deploy/pki/oz-dev-pki.sh /usr/local/bin/oz-dev-pki.sh") {
		t.Errorf("%s does not copy deploy/pki/oz-dev-pki.sh", path)
	}
}

func unwrapAll(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Every Dockerfile in deploy/docker belongs to a binary (or the PKI image).
func TestNoStrayDockerfiles(t *testing.T) {
	entries, err := os.ReadDir(deployPath("docker"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name, ok := strings.CutPrefix(e.Name(), "Dockerfile.")
		if !ok {
			continue
		}
		if _, isBin := deployedBinaries()[name]; !isBin && name != "pki" {
			t.Errorf("deploy/docker/%s builds no known binary", e.Name())
		}
	}
}

// The checker refuses what it should.
func TestDockerfileCheckerRefuses(t *testing.T) {
	good := string(readFile(t, deployPath("docker", "Dockerfile.ozresolverd")))
	r := rulesFor(t, "ozresolverd")
	for _, c := range []struct {
		name, from, to, want string
	}{
		{"root user", "USER 65532:65532", "USER root", `final USER is "root"`},
		{"uid 0", "USER 65532:65532", "USER 0", `final USER is "0"`},
		{"no final USER", "USER 65532:65532", "", "ends with ENTRYPOINT"},
		{"USER not last", "USER 65532:65532\n", "USER 65532:65532\nCMD [\"--help\"]\n", "ends with CMD"},
		{"debian base", "gcr.io/distroless/static-debian12:nonroot", "debian:bookworm", "FROM debian:bookworm"},
		{"cgo", "CGO_ENABLED=0 ", "", "lacks CGO_ENABLED=0"},
		{"not stripped", `-ldflags="-s -w" `, "", `lacks -ldflags="-s -w"`},
		{"not trimmed", "-trimpath ", "", "lacks -trimpath"},
		{"wrong port", "EXPOSE 7451", "EXPOSE 7450", "EXPOSE 7450, want 7451"},
		{"module missing", "COPY e2e/go.mod e2e/go.sum e2e/\n", "", "does not copy e2e/go.mod"},
		{"other go", "FROM golang:1.26@", "FROM golang:1.22@", "want golang:1.26"},
		{"go by tag", "FROM golang:1.26@sha256:", "FROM golang:1.26 AS x\nFROM golang:1.26@sha256:", "FROM golang:1.26, want it pinned by digest"},
		{"distroless by tag", "static-debian12:nonroot@sha256:", "static-debian12:nonroot\n#", "FROM gcr.io/distroless/static-debian12:nonroot, want it pinned by digest"},
		{"bad instruction", "USER 65532:65532\n", "USER 65532:65532\nFORM x\n", `unknown instruction "FORM"`},
	} {
		bad := strings.Replace(good, c.from, c.to, 1)
		if bad == good {
			t.Fatalf("%s: the mutation changed nothing", c.name)
		}
		ins, err := parseDockerfile(bad)
		if err == nil {
			err = checkDockerfile(ins, r)
		}
		switch {
		case err == nil:
			t.Errorf("%s: accepted", c.name)
		case !strings.Contains(err.Error(), c.want):
			t.Errorf("%s: refused, but not for %q:\n%v", c.name, c.want, err)
		}
	}
}

// dockerfileEnv reads the final stage's ENV KEY=VALUE instructions.
func dockerfileEnv(ins []instruction) map[string]string {
	env := map[string]string{}
	for _, in := range ins {
		if in.cmd == "FROM" {
			clear(env)
		}
		if in.cmd == "ENV" {
			for _, kv := range strings.Fields(in.args) {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
		}
	}
	return env
}
