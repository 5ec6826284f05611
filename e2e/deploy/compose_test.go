package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
)

var composeFile = func() string { return deployPath("compose", "compose.yaml") }

// loadCompose loads a compose file as Docker Compose does (compose-go, with
// the Compose Specification's JSON schema, which refuses unknown keys),
// interpolating from env only.
func loadCompose(path string, env ...string) (*types.Project, error) {
	opts, err := cli.NewProjectOptions([]string{path},
		cli.WithWorkingDirectory(deployPath("compose")),
		cli.WithEnv(env),
		cli.WithInterpolation(true),
	)
	if err != nil {
		return nil, err
	}
	return opts.LoadProject(context.Background())
}

// composeImages are the compose services and their images; pki is the
// one-shot development PKI.
var composeImages = map[string]string{
	"pki": "oz-dev-pki", "resolver": "ozresolverd", "secretstore": "ozsecretstored",
	"audit": "ozauditd", "gateway": "ozgateway",
}

func envOf(s types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			out[k] = *v
		} else {
			out[k] = ""
		}
	}
	return out
}

// checkCompose holds the compose project to the rules of deploy/README.md.
func checkCompose(p *types.Project) error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	var names []string
	for n := range p.Services {
		names = append(names, n)
	}
	sort.Strings(names)
	if want := sortedKeys(composeImages); strings.Join(names, ",") != strings.Join(want, ",") {
		fail("services %v, want %v", names, want)
	}
	dataVolumes := map[string]string{} // volume → the service using it
	for _, name := range names {
		s := p.Services[name]
		img := composeImages[name]
		env := envOf(s)
		sfail := func(format string, a ...any) { fail("%s: "+format, append([]any{name}, a...)...) }

		// Hardening.
		if !nonRootUser(s.User) {
			sfail("user %q: want a non-root UID (65532:65532)", s.User)
		}
		if !s.ReadOnly {
			sfail("read_only: want true")
		}
		if !contains(s.CapDrop, "ALL") || len(s.CapAdd) > 0 {
			sfail("cap_drop: want [ALL], nothing added")
		}
		if !contains(s.SecurityOpt, "no-new-privileges:true") {
			sfail("security_opt: want no-new-privileges:true")
		}
		if s.Privileged {
			sfail("privileged")
		}
		// Image and build.
		if imageName(s.Image) != img {
			sfail("image %q: want …/%s", s.Image, img)
		}
		if s.Build == nil {
			sfail("no build section")
		} else {
			df := filepath.Join(s.Build.Context, s.Build.Dockerfile)
			if !filepath.IsAbs(s.Build.Context) {
				df = filepath.Join(deployPath("compose"), df)
			}
			if _, err := os.Stat(df); err != nil {
				sfail("build: %v", err)
			}
			if want := "deploy/docker/Dockerfile." + strings.TrimPrefix(img, "oz-dev-"); s.Build.Dockerfile != want {
				sfail("build.dockerfile %q, want %q", s.Build.Dockerfile, want)
			}
			if ctx, err := filepath.Abs(filepath.Join(deployPath("compose"), s.Build.Context)); err != nil || (ctx != root && s.Build.Context != root) {
				sfail("build.context %q: want the repository root (the go.work workspace)", s.Build.Context)
			}
		}
		// Exposure: only the gateway publishes a port.
		svc, isService := services[name]
		switch {
		case svc.public:
			if len(s.Ports) != 1 || s.Ports[0].Target != uint32(svc.port) {
				sfail("ports: want the gateway's %d published, alone", svc.port)
			}
		case len(s.Ports) > 0:
			sfail("ports published: only the gateway may be reachable from outside")
		}
		for net := range s.Networks {
			n, ok := p.Networks[net]
			if !ok {
				sfail("network %s: not defined", net)
			} else if !n.Internal && !svc.public {
				sfail("network %s is not internal: only the gateway may have a way out", net)
			}
		}
		if name == "pki" && s.NetworkMode != "none" {
			sfail("network_mode %q: the PKI generator needs no network", s.NetworkMode)
		}
		if svc.public && len(s.Networks) < 2 {
			sfail("the gateway needs the internal network and one with a way out")
		}

		// Volumes: its own data volume; the PKI volume only its own part,
		// read-only, once the pki service has completed.
		mountsPKI := false
		for _, v := range s.Volumes {
			switch {
			case v.Type != types.VolumeTypeVolume:
				sfail("volume %s: want named volumes only (type %s)", v.Target, v.Type)
			case v.Source == "pki" && name == "pki":
			case v.Source == "pki":
				mountsPKI = true
				sub := ""
				if v.Volume != nil {
					sub = v.Volume.Subpath
				}
				if !v.ReadOnly {
					sfail("the pki volume must be mounted read-only")
				}
				if sub != name && !(sub == "keyring" && name == "secretstore") {
					sfail("mounts pki subpath %q: a service gets only its own certificate (and the secretstore the keyring)", sub)
				}
			default:
				if other, ok := dataVolumes[v.Source]; ok && other != name {
					sfail("volume %s is also %s's: each service has its own", v.Source, other)
				}
				dataVolumes[v.Source] = name
				if v.Target != env["OZ_DATA_DIR"] {
					sfail("volume %s at %s: want it at OZ_DATA_DIR (%q)", v.Source, v.Target, env["OZ_DATA_DIR"])
				}
			}
		}
		if mountsPKI {
			if d, ok := s.DependsOn["pki"]; !ok || d.Condition != types.ServiceConditionCompletedSuccessfully {
				sfail("mounts the pki volume but does not wait for pki to complete successfully")
			}
		}
		if !isService {
			continue
		}
		if svc.stateful && env["OZ_DATA_DIR"] == "" {
			sfail("OZ_DATA_DIR: want it on the service's volume")
		}

		// Configuration: variables the binary reads, values that fit.
		if err := checkEnv(svc.bin, sortedKeys(env)); err != nil {
			fail("%v", err)
		}
		if err := checkFlags(svc.bin, s.Command); err != nil {
			fail("%v", err)
		}
		listenVar := envNameRE.FindString(helps[svc.bin].flags["listen"])
		if env[listenVar] != fmt.Sprintf(":%d", svc.port) {
			sfail("%s=%q: want \":%d\"", listenVar, env[listenVar], svc.port)
		}
		if !svc.public && !contains(s.Expose, fmt.Sprint(svc.port)) {
			sfail("expose: want %d", svc.port)
		}
		for _, callee := range callees(name) {
			n := "OZ_" + strings.ToUpper(callee) + "_ADDR"
			if want := fmt.Sprintf("%s:%d", callee, services[callee].port); env[n] != want {
				sfail("%s=%q: want %q", n, env[n], want)
			}
		}
		if store, ok := env["OZ_STORE"]; svc.stateful {
			// The file the binary opens today by default: <data-dir>/<name>.db.
			if want := "bolt:" + env["OZ_DATA_DIR"] + "/" + name + ".db"; store != want {
				sfail("OZ_STORE=%q: want %q (a bbolt file on the service's volume)", store, want)
			}
		} else if ok {
			sfail("OZ_STORE on a stateless service")
		}
		if _, dev := env["OZ_DEV"]; dev {
			sfail("OZ_DEV: the keyring comes from the pki volume, not development mode")
		}
		if svc.bin == "ozsecretstored" && env["OZ_KEK_FILE"] == "" {
			sfail("OZ_KEK_FILE: want the keyring file from the pki volume")
		}
		for k, v := range env {
			if !strings.HasPrefix(v, "/") {
				continue
			}
			m, ok := composeMountOf(s, v)
			switch {
			case !ok:
				sfail("%s=%s is on no volume (the root filesystem is read-only)", k, v)
			case (strings.Contains(k, "TLS") || k == "OZ_KEK_FILE") && (m.Source != "pki" || !m.ReadOnly):
				sfail("%s=%s: want it on the read-only pki volume", k, v)
			}
		}
	}
	return errors.Join(errs...)
}

func composeMountOf(s types.ServiceConfig, p string) (types.ServiceVolumeConfig, bool) {
	var best types.ServiceVolumeConfig
	found := false
	for _, v := range s.Volumes {
		if (p == v.Target || strings.HasPrefix(p, strings.TrimSuffix(v.Target, "/")+"/")) && len(v.Target) >= len(best.Target) {
			best, found = v, true
		}
	}
	return best, found
}

func TestCompose(t *testing.T) {
	p, err := loadCompose(composeFile())
	if err != nil {
		t.Fatal(err)
	}
	if err := checkCompose(p); err != nil {
		t.Errorf("%s:\n%v", composeFile(), err)
	}
	// The published address defaults to loopback and can be changed.
	if got := p.Services["gateway"].Ports[0]; got.HostIP != "127.0.0.1" || got.Published != "7443" {
		t.Errorf("gateway published on %s:%s, want 127.0.0.1:7443 by default", got.HostIP, got.Published)
	}
	p, err = loadCompose(composeFile(), "OZ_GATEWAY_PUBLISH=0.0.0.0:8443")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Services["gateway"].Ports[0]; got.HostIP != "0.0.0.0" || got.Published != "8443" {
		t.Errorf("OZ_GATEWAY_PUBLISH=0.0.0.0:8443: published on %s:%s", got.HostIP, got.Published)
	}
}

// Docker's own parser, where the compose plugin is installed (it needs no
// engine for `config`).
func TestDockerComposeConfig(t *testing.T) {
	docker, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("no docker CLI")
	}
	if err := exec.Command(docker, "compose", "version").Run(); err != nil {
		t.Skip("the docker CLI has no compose plugin: compose-go (TestCompose) validated the file instead")
	}
	cmd := exec.Command(docker, "compose", "-f", composeFile(), "config", "--quiet")
	cmd.Env = append(os.Environ(), "DOCKER_HOST=unix:///nonexistent") // no engine is needed
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("docker compose config: %v\n%s", err, out)
	}
}

// The checks can fail.
func TestComposeCheckerRefuses(t *testing.T) {
	good := string(readFile(t, composeFile()))
	// from → to in the whole file, or in service svc when set.
	cases := []struct{ name, svc, from, to, want string }{
		{"unknown key", "", "    read_only: true\n    cap_drop: [ALL]\n    security_opt: [\"no-new-privileges:true\"]\n    stop_grace_period: 15s\n    restart: unless-stopped\n\n  secretstore:",
			"    read_only: true\n    cap_drop: [ALL]\n    security_opt: [\"no-new-privileges:true\"]\n    stop_grace_period: 15s\n    restart: unless-stopped\n    healthcheck_cmd: x\n\n  secretstore:", "healthcheck_cmd"},
		{"root user", "audit", "    user: \"65532:65532\"\n", "    user: \"0:0\"\n", "user \"0:0\""},
		{"resolver published", "", "    expose: [\"7451\"]\n", "    expose: [\"7451\"]\n    ports: [\"7451:7451\"]\n", "only the gateway"},
		{"writable root", "audit", "\n    read_only: true\n", "\n    read_only: false\n", "read_only"},
		{"shared data volume", "", "      - audit-data:/var/lib/oz\n", "      - resolver-data:/var/lib/oz\n", "each service has its own"},
		{"another's key", "", "          subpath: audit\n", "          subpath: secretstore\n", "subpath \"secretstore\""},
		{"keys writable", "", "        target: /etc/oz/keyring\n        read_only: true\n", "        target: /etc/oz/keyring\n        read_only: false\n", "read-only"},
		{"unknown variable", "", "      OZ_KEK_FILE: /etc/oz/keyring/keyring.json\n", "      OZ_KEK: /etc/oz/keyring/keyring.json\n", "OZ_KEK is not in"},
		{"wrong address", "audit", "      OZ_RESOLVER_ADDR: resolver:7451\n", "      OZ_RESOLVER_ADDR: resolver:7450\n", "OZ_RESOLVER_ADDR=\"resolver:7450\""},
		{"audit without the secretstore", "audit", "      OZ_SECRETSTORE_ADDR: secretstore:7450\n", "", "audit: OZ_SECRETSTORE_ADDR=\"\""},
		{"dev mode", "", "      OZ_KEK_FILE: /etc/oz/keyring/keyring.json\n", "      OZ_KEK_FILE: /etc/oz/keyring/keyring.json\n      OZ_DEV: \"true\"\n", "OZ_DEV"},
		{"store elsewhere", "", "      OZ_STORE: bolt:/var/lib/oz/audit.db\n", "      OZ_STORE: bolt:/tmp/audit.db\n", "OZ_STORE"},
		{"open network", "", "  backend:\n    internal: true\n", "  backend:\n    internal: false\n", "not internal"},
		{"no wait for pki", "", "    depends_on:\n      pki:\n        condition: service_completed_successfully\n    environment:\n      OZ_AUDIT_LISTEN", "    depends_on:\n      pki:\n        condition: service_started\n    environment:\n      OZ_AUDIT_LISTEN", "does not wait for pki"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			bad := strings.Replace(good, c.from, c.to, 1)
			if c.svc != "" {
				bad = replaceInService(t, good, c.svc, c.from, c.to)
			}
			if bad == good {
				t.Fatal("the mutation changed nothing")
			}
			path := filepath.Join(t.TempDir(), "compose.yaml")
			if err := os.WriteFile(path, []byte(bad), 0o644); err != nil {
				t.Fatal(err)
			}
			p, err := loadCompose(path)
			if err == nil {
				err = checkCompose(p)
			}
			switch {
			case err == nil:
				t.Error("accepted")
			case !strings.Contains(err.Error(), c.want):
				t.Errorf("refused, but not for %q:\n%v", c.want, err)
			}
		})
	}
}

// replaceInService replaces the first old after the line "  service:".
func replaceInService(t *testing.T, text, service, old, new string) string {
	t.Helper()
	head := "\n  " + service + ":\n"
	i := strings.Index(text, head)
	if i < 0 {
		t.Fatalf("no service %s", service)
	}
	j := strings.Index(text[i:], old)
	if j < 0 {
		t.Fatalf("service %s: no %q", service, old)
	}
	return text[:i+j] + new + text[i+j+len(old):]
}
