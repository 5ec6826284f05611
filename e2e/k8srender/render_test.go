// Package k8srender_test renders deploy/k8s with kustomize itself (its Go
// API, krusty: what `kubectl apply -k` runs), base and base with each
// component, and holds the objects to what the manifests promise: internal
// Services headless and every client dialling one of them by a dns:///
// name that exists in the render, with that port; images pinned by digest
// once an overlay sets them; probes, resources and a locked-down
// securityContext on every container; and only OZ_ variables the binaries
// read. No cluster or kubectl is needed.
package k8srender_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/ozsecrets/oz/e2e/harness"
)

// binaries are the images deploy/k8s runs, by the name of their binary.
var binaries = []string{"ozresolverd", "ozsecretstored", "ozauditd", "ozgateway"}

var root = func() string {
	r, err := harness.RepoRoot()
	if err != nil {
		panic(err)
	}
	return r
}()

func k8sPath(elem ...string) string {
	return filepath.Join(append([]string{root, "deploy", "k8s"}, elem...)...)
}

// render builds the kustomization in dir as kubectl apply -k would.
func render(t *testing.T, dir string) *cluster {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var docs [][]byte
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, y)
	}
	c, err := decode(docs)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	return c
}

// overlay writes a kustomization in a new directory that builds on base,
// with the extra lines given (components:, images:), and returns the
// directory.
func overlay(t *testing.T, extra string) string {
	t.Helper()
	dir := t.TempDir()
	rel := func(p string) string {
		r, err := filepath.Rel(dir, p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	k := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [" + rel(k8sPath("base")) + "]\n" +
		strings.ReplaceAll(extra, "COMPONENTS", rel(k8sPath("components")))
	if err := os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(k), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// pinned is the overlay of deploy/README.md ("Pinning images"): each
// project image by digest, from one's own registry.
func pinned() string {
	var b strings.Builder
	b.WriteString("images:\n")
	for i, bin := range binaries {
		fmt.Fprintf(&b, "  - name: ozsecrets/%s\n    newName: registry.example.com/oz/%s\n    digest: sha256:%064x\n", bin, bin, i+1)
	}
	return b.String()
}

// envNames are the OZ_ variables each binary reads: those its --help
// names (every flag has one). The binaries are built, not grepped, so a
// name assembled in code counts too.
func envNames(t *testing.T) map[string]map[string]bool {
	t.Helper()
	helpOnce.Do(func() { helpNames, helpErr = readHelp() })
	if helpErr != nil {
		t.Fatal(helpErr)
	}
	return helpNames
}

var (
	helpOnce  sync.Once
	helpNames map[string]map[string]bool
	helpErr   error
)

func readHelp() (map[string]map[string]bool, error) {
	dir, err := os.MkdirTemp("", "oz-k8srender-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	args := []string{"build", "-o", dir + string(filepath.Separator)}
	for _, b := range binaries {
		args = append(args, harness.Binaries[b])
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build: %v\n%s", err, out)
	}
	re := regexp.MustCompile(`\bOZ_[A-Z0-9_]*[A-Z0-9]\b`)
	names := map[string]map[string]bool{}
	for _, b := range binaries {
		out, _ := exec.Command(filepath.Join(dir, b), "--help").CombinedOutput() // exits 0 or 2
		names[b] = map[string]bool{}
		for _, n := range re.FindAllString(string(out), -1) {
			names[b][n] = true
		}
		if len(names[b]) < 5 {
			return nil, fmt.Errorf("%s --help names %d OZ_ variables, want its flags'\n%s", b, len(names[b]), out)
		}
	}
	return names, nil
}

func TestBase(t *testing.T) {
	c := render(t, k8sPath("base"))
	if err := c.check(envNames(t), false); err != nil {
		t.Errorf("deploy/k8s/base:\n%v", err)
	}
}

// TestPinnedImages: the base's own images carry the tag the Dockerfiles'
// comments build (":dev"); an overlay pins them by digest, and then every
// image is pinned.
func TestPinnedImages(t *testing.T) {
	c := render(t, overlay(t, pinned()))
	if err := c.check(envNames(t), true); err != nil {
		t.Errorf("base with images pinned:\n%v", err)
	}
}

func TestComponents(t *testing.T) {
	dirs, err := os.ReadDir(k8sPath("components"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no components")
	}
	env := envNames(t)
	for _, d := range dirs {
		t.Run(d.Name(), func(t *testing.T) {
			c := render(t, overlay(t, "components: [COMPONENTS/"+d.Name()+"]\n"+pinned()))
			if err := c.check(env, true); err != nil {
				t.Errorf("base + %s:\n%v", d.Name(), err)
			}
		})
	}
}

// TestCertificatesNameWhatIsDialled: the name in each dns:/// address is
// the one TLS checks, so the cert-manager example and the development
// script must put it in the service's certificate.
func TestCertificatesNameWhatIsDialled(t *testing.T) {
	c := render(t, k8sPath("base"))
	hosts := c.dialledHosts()
	if len(hosts) == 0 {
		t.Fatal("no dns:/// address in base")
	}
	certs, err := certManagerNames(k8sPath("examples", "cert-manager.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	script, err := os.ReadFile(filepath.Join(root, "deploy", "pki", "oz-dev-pki.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for svc, host := range hosts {
		if !slices.Contains(certs[svc+"-tls"], host) {
			t.Errorf("cert-manager example: the certificate in %s-tls names %q, want %q (dialled as dns:///%s:…)", svc, certs[svc+"-tls"], host, host)
		}
		// The script's names are $svc, $svc.$ns, $svc.$ns.svc, …: the
		// dialled name must be one of those forms in the default namespace.
		if ns := "oz"; host != svc+"."+ns+".svc" && host != svc+"."+ns+".svc.cluster.local" {
			t.Errorf("dialled name %q: not among oz-dev-pki.sh's names for %s", host, svc)
		} else if !strings.Contains(string(script), `DNS:$svc.$ns.svc`) {
			t.Errorf("oz-dev-pki.sh: no DNS:$svc.$ns.svc name, which the services dial")
		}
	}
}
