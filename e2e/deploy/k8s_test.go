package deploy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func TestK8sFilesParseStrictly(t *testing.T) {
	files, err := loadK8sTree()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"base/kustomization.yaml", "examples/cert-manager.yaml"} {
		if _, ok := files[deployPath("k8s", want)]; !ok {
			t.Errorf("deploy/k8s/%s: missing", want)
		}
	}
}

func renderedBase(t *testing.T) []object {
	t.Helper()
	objs, err := renderBase(deployPath("k8s", "base"))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func TestK8sBase(t *testing.T) {
	objs := renderedBase(t)
	if err := checkCluster(objs, checkOptions{}); err != nil {
		t.Errorf("deploy/k8s/base:\n%v", err)
	}
	// kustomize itself, when installed, renders the same objects.
	kobjs, ok, err := kubectlKustomize(deployPath("k8s", "base"))
	switch {
	case !ok:
		t.Log("kubectl not installed: base rendered by this test only")
	case err != nil:
		t.Error(err)
	default:
		if got, want := ids(kobjs), ids(objs); !slices.Equal(got, want) {
			t.Errorf("kubectl kustomize renders\n  %v\nthis test renders\n  %v", got, want)
		}
		if err := checkCluster(kobjs, checkOptions{}); err != nil {
			t.Errorf("kubectl kustomize deploy/k8s/base:\n%v", err)
		}
	}
}

// Each component checks on its own, and with kubectl, base plus the
// component still meets every rule.
func TestK8sComponents(t *testing.T) {
	base := renderedBase(t)
	dirs, err := os.ReadDir(deployPath("k8s", "components"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatal("no components")
	}
	for _, d := range dirs {
		t.Run(d.Name(), func(t *testing.T) {
			dir := deployPath("k8s", "components", d.Name())
			path := filepath.Join(dir, "kustomization.yaml")
			docs, err := decodeDocs(readFile(t, path), path)
			if err != nil {
				t.Fatal(err)
			}
			if len(docs) != 1 || docs[0].kind != "Component" {
				t.Fatalf("%s: want one Component", path)
			}
			if err := checkComponent(docs[0].obj.(*kustomization), base); err != nil {
				t.Errorf("%s: %v", path, err)
			}
			overlay := t.TempDir()
			rel := func(p string) string {
				r, err := filepath.Rel(overlay, p)
				if err != nil {
					t.Fatal(err)
				}
				return r
			}
			k := fmt.Sprintf("resources: [%s]\ncomponents: [%s]\n", rel(deployPath("k8s", "base")), rel(dir))
			if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(k), 0o644); err != nil {
				t.Fatal(err)
			}
			objs, ok, err := kubectlKustomize(overlay)
			if !ok {
				t.Skip("kubectl not installed: the component is not rendered")
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := checkCluster(objs, checkOptions{tcpProbes: d.Name() == "tcp-probes"}); err != nil {
				t.Errorf("base + %s:\n%v", d.Name(), err)
			}
		})
	}
}

// The cert-manager example issues what the Deployments mount: one
// certificate per service, CN = the service, into <service>-tls.
func TestCertManagerExample(t *testing.T) {
	path := deployPath("k8s", "examples", "cert-manager.yaml")
	objs, err := decodeDocs(readFile(t, path), path)
	if err != nil {
		t.Fatal(err)
	}
	issuers := map[string]bool{}
	certs := map[string]*cmCertificate{}
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *cmIssuer:
			issuers[o.name] = true
		case *cmCertificate:
			certs[v.Spec.SecretName] = v
		}
	}
	for _, c := range certs {
		if !issuers[c.Spec.IssuerRef.Name] {
			t.Errorf("Certificate %s: issuer %s is not in the example", c.Metadata.Name, c.Spec.IssuerRef.Name)
		}
	}
	c, err := index(renderedBase(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range c.deployments {
		secret := tlsSecretOf(d)
		cert := certs[secret]
		if cert == nil {
			t.Errorf("no Certificate for Secret %s (mounted by %s)", secret, name)
			continue
		}
		if cert.Spec.CommonName != name || !contains(cert.Spec.DNSNames, name) {
			t.Errorf("Certificate %s: want commonName and a DNS name %q", cert.Metadata.Name, name)
		}
		if !contains(cert.Spec.Usages, "server auth") || !contains(cert.Spec.Usages, "client auth") {
			t.Errorf("Certificate %s: want usages server auth and client auth", cert.Metadata.Name)
		}
	}
}

// tlsSecretOf is the Secret mounted where the certificate variables point.
func tlsSecretOf(d *appsv1.Deployment) string {
	spec := d.Spec.Template.Spec
	for _, m := range spec.Containers[0].VolumeMounts {
		if m.MountPath == "/etc/oz/tls" {
			for _, v := range spec.Volumes {
				if v.Name == m.Name && v.Secret != nil {
					return v.Secret.SecretName
				}
			}
		}
	}
	return ""
}

// The checks can fail: each mutation of base breaks one rule.
func TestK8sCheckerRefuses(t *testing.T) {
	container := func(objs []object, name string) *corev1.Container {
		return &find[*appsv1.Deployment](t, objs, "Deployment", name).Spec.Template.Spec.Containers[0]
	}
	unsetEnv := func(ct *corev1.Container, name string) {
		n := len(ct.Env)
		ct.Env = slices.DeleteFunc(ct.Env, func(e corev1.EnvVar) bool { return e.Name == name })
		if len(ct.Env) == n {
			t.Fatalf("container %s sets no %s", ct.Name, name)
		}
	}
	// metricsRule is the ingress rule of a service's policy on port 9090.
	metricsRule := func(objs []object, name string) *netv1.NetworkPolicyIngressRule {
		p := find[*netv1.NetworkPolicy](t, objs, "NetworkPolicy", name)
		for i, r := range p.Spec.Ingress {
			for _, port := range r.Ports {
				if port.Port != nil && port.Port.IntValue() == 9090 {
					return &p.Spec.Ingress[i]
				}
			}
		}
		t.Fatalf("NetworkPolicy %s: no ingress rule on 9090", name)
		return nil
	}
	setEnv := func(ct *corev1.Container, name, value string) {
		for i := range ct.Env {
			if ct.Env[i].Name == name {
				ct.Env[i].Value = value
				return
			}
		}
		ct.Env = append(ct.Env, corev1.EnvVar{Name: name, Value: value})
	}
	cases := map[string]func(objs []object){ // name → mutation; want[name] is in the error
		"runAsNonRoot missing": func(objs []object) {
			d := find[*appsv1.Deployment](t, objs, "Deployment", "resolver")
			d.Spec.Template.Spec.SecurityContext.RunAsNonRoot = nil
			d.Spec.Template.Spec.Containers[0].SecurityContext.RunAsNonRoot = nil
		},
		"one replica": func(objs []object) {
			one := int32(1)
			find[*appsv1.Deployment](t, objs, "Deployment", "audit").Spec.Replicas = &one
		},
		"writable root": func(objs []object) {
			f := false
			container(objs, "gateway").SecurityContext.ReadOnlyRootFilesystem = &f
		},
		"capabilities kept": func(objs []object) {
			container(objs, "secretstore").SecurityContext.Capabilities.Drop = nil
		},
		"no memory limit": func(objs []object) {
			delete(container(objs, "secretstore").Resources.Limits, corev1.ResourceMemory)
		},
		"zero cpu limit": func(objs []object) {
			container(objs, "resolver").Resources.Limits[corev1.ResourceCPU] = resource.Quantity{}
		},
		"no readiness probe": func(objs []object) {
			container(objs, "audit").ReadinessProbe = nil
		},
		"gRPC probe on the mTLS port": func(objs []object) {
			container(objs, "audit").LivenessProbe.GRPC.Port = 7452
		},
		"resolver exposed": func(objs []object) {
			find[*corev1.Service](t, objs, "Service", "resolver").Spec.Type = corev1.ServiceTypeLoadBalancer
		},
		"resolver not headless": func(objs []object) {
			find[*corev1.Service](t, objs, "Service", "resolver").Spec.ClusterIP = ""
		},
		"gateway not exposed": func(objs []object) {
			find[*corev1.Service](t, objs, "Service", "gateway").Spec.Type = corev1.ServiceTypeClusterIP
		},
		"secretstore admits etcd": func(objs []object) {
			p := find[*netv1.NetworkPolicy](t, objs, "NetworkPolicy", "secretstore")
			from := p.Spec.Ingress[0].From
			p.Spec.Ingress[0].From = append(from, *from[0].DeepCopy())
			p.Spec.Ingress[0].From[len(from)].PodSelector.MatchLabels[nameLabel] = "etcd"
		},
		"audit cannot reach the secretstore": func(objs []object) {
			p := find[*netv1.NetworkPolicy](t, objs, "NetworkPolicy", "audit")
			p.Spec.Egress = slices.DeleteFunc(p.Spec.Egress, func(r netv1.NetworkPolicyEgressRule) bool {
				return len(r.To) == 1 && r.To[0].PodSelector != nil && r.To[0].PodSelector.MatchLabels[nameLabel] == "secretstore"
			})
		},
		"audit without the secretstore's address": func(objs []object) {
			unsetEnv(container(objs, "audit"), "OZ_SECRETSTORE_ADDR")
		},
		"metrics off": func(objs []object) {
			unsetEnv(container(objs, "resolver"), "OZ_RESOLVER_METRICS_LISTEN")
		},
		"metrics on loopback": func(objs []object) {
			setEnv(container(objs, "audit"), "OZ_AUDIT_METRICS_LISTEN", "127.0.0.1:9090")
		},
		"metrics port not declared": func(objs []object) {
			ct := container(objs, "secretstore")
			ct.Ports = slices.DeleteFunc(ct.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == 9090 })
		},
		"not scraped": func(objs []object) {
			delete(find[*appsv1.Deployment](t, objs, "Deployment", "audit").Spec.Template.Annotations, "prometheus.io/scrape")
		},
		"metrics open to anyone": func(objs []object) {
			metricsRule(objs, "secretstore").From = nil
		},
		"monitoring admitted to the service port": func(objs []object) {
			metricsRule(objs, "resolver").Ports[0].Port.IntVal = 7451
		},
		"resolver admits every port": func(objs []object) {
			find[*netv1.NetworkPolicy](t, objs, "NetworkPolicy", "resolver").Spec.Ingress[0].Ports = nil
		},
		"audit cannot reach etcd": func(objs []object) {
			p := find[*netv1.NetworkPolicy](t, objs, "NetworkPolicy", "audit")
			p.Spec.Egress = p.Spec.Egress[:1]
		},
		"no default deny": func(objs []object) {
			p := find[*netv1.NetworkPolicy](t, objs, "NetworkPolicy", "default-deny")
			p.Spec.PolicyTypes = []netv1.PolicyType{netv1.PolicyTypeIngress}
		},
		"variable the binary does not read": func(objs []object) {
			setEnv(container(objs, "resolver"), "OZ_RESOLVER_STORE", "x")
		},
		"flag the binary does not have": func(objs []object) {
			container(objs, "gateway").Args = []string{"--backend=resolver:7451"}
		},
		"wrong address": func(objs []object) {
			setEnv(container(objs, "gateway"), "OZ_SECRETSTORE_ADDR", "dns:///secretstore.oz.svc:7451")
		},
		"listening on loopback": func(objs []object) {
			setEnv(container(objs, "secretstore"), "OZ_SECRETSTORE_LISTEN", "127.0.0.1:7450")
		},
		"bbolt store with replicas": func(objs []object) {
			find[*corev1.ConfigMap](t, objs, "ConfigMap", "oz-store").Data["OZ_STORE"] = "bolt:/var/lib/oz/x.db"
		},
		"keyring off the mounts": func(objs []object) {
			setEnv(container(objs, "secretstore"), "OZ_KEK_FILE", "/keyring.json")
		},
		"keyring as a literal": func(objs []object) {
			ct := container(objs, "secretstore")
			ct.Env = slices.DeleteFunc(ct.Env, func(e corev1.EnvVar) bool { return e.Name == "OZ_KEK_FILE" })
			setEnv(ct, "OZ_KEYRING", `{"primary":"k1","keys":{"k1":"…"}}`)
		},
		"dev mode": func(objs []object) {
			setEnv(container(objs, "secretstore"), "OZ_DEV", "true")
		},
		"image of another binary": func(objs []object) {
			container(objs, "audit").Image = "ozsecrets/ozresolverd:dev"
		},
	}
	want := map[string]string{
		"runAsNonRoot missing":                    "runAsNonRoot",
		"one replica":                             "replicas",
		"writable root":                           "readOnlyRootFilesystem",
		"capabilities kept":                       "capabilities",
		"no memory limit":                         "resources.limits.memory",
		"zero cpu limit":                          "resources.limits.cpu",
		"no readiness probe":                      "no readinessProbe",
		"gRPC probe on the mTLS port":             "health port",
		"resolver exposed":                        "only the gateway may be reachable",
		"gateway not exposed":                     "must be reachable from outside",
		"secretstore admits etcd":                 "secretstore ingress: allows more than it should: etcd→TCP/7450",
		"audit cannot reach the secretstore":      "audit egress: does not allow: secretstore→TCP/7450",
		"audit without the secretstore's address": "OZ_SECRETSTORE_ADDR=\"\"",
		"metrics off":                             "OZ_RESOLVER_METRICS_LISTEN=\"\"",
		"metrics on loopback":                     "OZ_AUDIT_METRICS_LISTEN=\"127.0.0.1:9090\"",
		"metrics port not declared":               "no containerPort 9090 (metrics)",
		"not scraped":                             "pod annotation prometheus.io/scrape",
		"metrics open to anyone":                  "secretstore ingress: allows more than it should: anywhere→TCP/9090",
		"monitoring admitted to the service port": "resolver ingress: allows more than it should: namespaces kubernetes.io/metadata.name=monitoring→TCP/7451; does not allow: namespaces kubernetes.io/metadata.name=monitoring→TCP/9090",
		"resolver admits every port":              "any port",
		"audit cannot reach etcd":                 "audit egress: does not allow: etcd",
		"no default deny":                         "no default-deny",
		"variable the binary does not read":       "OZ_RESOLVER_STORE is not in",
		"flag the binary does not have":           "flag --backend",
		"wrong address":                           "OZ_SECRETSTORE_ADDR=\"dns:///secretstore.oz.svc:7451\"",
		"resolver not headless":                   "clusterIP \"\": want None",
		"listening on loopback":                   "OZ_SECRETSTORE_LISTEN",
		"bbolt store with replicas":               "OZ_STORE=\"bolt:",
		"keyring off the mounts":                  "OZ_KEK_FILE=/keyring.json is on no mounted volume",
		"keyring as a literal":                    "OZ_KEYRING must come from a Secret",
		"dev mode":                                "OZ_DEV",
		"image of another binary":                 "image \"ozsecrets/ozresolverd:dev\"",
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			objs := renderedBase(t)
			mutate(objs)
			err := checkCluster(objs, checkOptions{})
			switch {
			case err == nil:
				t.Error("accepted")
			case want[name] == "":
				t.Fatalf("no expected error for %q", name)
			case !strings.Contains(err.Error(), want[name]):
				t.Errorf("refused, but not for %q:\n%v", want[name], err)
			}
		})
	}
}

// Strict decoding refuses unknown fields and kinds.
func TestK8sStrictDecoding(t *testing.T) {
	good := string(readFile(t, deployPath("k8s", "base", "audit.yaml")))
	for name, bad := range map[string]string{
		"misspelt field":  strings.Replace(good, "replicas: 2", "replica: 2", 1),
		"misplaced field": strings.Replace(good, "          readinessProbe:", "          readOnlyRootFilesystem: true\n          readinessProbe:", 1),
		"unknown kind":    good + "---\napiVersion: v1\nkind: Pod2\nmetadata: {name: x}\n",
		"duplicate key":   strings.Replace(good, "replicas: 2", "replicas: 2\n  replicas: 3", 1),
	} {
		if bad == good {
			t.Fatalf("%s: the mutation changed nothing", name)
		}
		if _, err := decodeDocs([]byte(bad), name); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

func find[T any](t *testing.T, objs []object, kind, name string) T {
	t.Helper()
	for _, o := range objs {
		if o.kind == kind && o.name == name {
			return o.obj.(T)
		}
	}
	t.Fatalf("no %s %s", kind, name)
	var zero T
	return zero
}
