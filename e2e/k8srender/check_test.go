package k8srender_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/ozsecrets/oz/lib/dial"
)

// cluster is a rendered set of objects: the kinds the checks read.
type cluster struct {
	deployments []*appsv1.Deployment
	services    map[string]*corev1.Service // by namespace/name
	configMaps  map[string]*corev1.ConfigMap
	all         []string // kind/namespace/name of every object
}

func decode(docs [][]byte) (*cluster, error) {
	c := &cluster{services: map[string]*corev1.Service{}, configMaps: map[string]*corev1.ConfigMap{}}
	for _, doc := range docs {
		var head struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name, Namespace string
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return nil, err
		}
		c.all = append(c.all, head.Kind+"/"+head.Metadata.Namespace+"/"+head.Metadata.Name)
		var obj any
		switch head.Kind {
		case "Deployment":
			d := &appsv1.Deployment{}
			c.deployments, obj = append(c.deployments, d), d
		case "Service":
			s := &corev1.Service{}
			c.services[head.Metadata.Namespace+"/"+head.Metadata.Name], obj = s, s
		case "ConfigMap":
			m := &corev1.ConfigMap{}
			c.configMaps[head.Metadata.Namespace+"/"+head.Metadata.Name], obj = m, m
		default:
			continue
		}
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return nil, fmt.Errorf("%s %s: %w", head.Kind, head.Metadata.Name, err)
		}
	}
	if len(c.deployments) == 0 {
		return nil, errors.New("no Deployment")
	}
	return c, nil
}

func (c *cluster) ids() []string { return slices.Sorted(slices.Values(c.all)) }

var digestRE = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)

// check holds the cluster to what the manifests promise. With pinned,
// every image must be pinned by digest; without, the project's own images
// (ozsecrets/<binary>, which the user builds and an overlay pins) may
// carry a tag.
func (c *cluster) check(env map[string]map[string]bool, pinned bool) error {
	var errs []error
	for _, d := range c.deployments {
		if err := c.checkDeployment(d, env, pinned); err != nil {
			errs = append(errs, fmt.Errorf("Deployment %s:\n%w", d.Name, indent(err)))
		}
	}
	// Every Service but the public one is headless: DNS then lists each
	// ready pod, and the clients balance calls over them.
	for _, key := range slices.Sorted(mapKeys(c.services)) {
		s := c.services[key]
		public := s.Spec.Type == corev1.ServiceTypeLoadBalancer || s.Spec.Type == corev1.ServiceTypeNodePort
		if !public && s.Spec.ClusterIP != corev1.ClusterIPNone {
			errs = append(errs, fmt.Errorf("Service %s: clusterIP %q, want None (headless: a ClusterIP pins each client's HTTP/2 connection to one pod)", key, s.Spec.ClusterIP))
		}
	}
	return errors.Join(errs...)
}

func (c *cluster) checkDeployment(d *appsv1.Deployment, env map[string]map[string]bool, pinned bool) error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	pod := d.Spec.Template.Spec
	if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		fail("pod securityContext.runAsNonRoot: want true")
	}
	if len(pod.InitContainers) > 0 {
		fail("init containers: none expected (each would need the same checks)")
	}
	for _, ct := range pod.Containers {
		bin := ""
		for _, b := range binaries {
			if imageName(ct.Image) == b {
				bin = b
			}
		}
		if bin == "" {
			fail("container %s: image %q is none of %v", ct.Name, ct.Image, binaries)
		}
		if err := checkImage(ct.Image, bin, pinned); err != nil {
			fail("container %s: %v", ct.Name, err)
		}
		sc := ct.SecurityContext
		switch {
		case sc == nil:
			fail("container %s: no securityContext", ct.Name)
		default:
			if sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
				fail("container %s: runAsNonRoot: want true", ct.Name)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				fail("container %s: readOnlyRootFilesystem: want true", ct.Name)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				fail("container %s: allowPrivilegeEscalation: want false", ct.Name)
			}
			if sc.Privileged != nil && *sc.Privileged {
				fail("container %s: privileged", ct.Name)
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
				fail("container %s: capabilities: want drop [ALL], nothing added", ct.Name)
			}
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if q, ok := ct.Resources.Requests[r]; !ok || q.IsZero() {
				fail("container %s: resources.requests.%s: missing", ct.Name, r)
			}
			if q, ok := ct.Resources.Limits[r]; !ok || q.IsZero() {
				fail("container %s: resources.limits.%s: missing", ct.Name, r)
			}
		}
		vars, err := c.containerEnv(d.Namespace, ct)
		if err != nil {
			fail("container %s: %v", ct.Name, err)
		}
		for _, probe := range []struct {
			kind string
			p    *corev1.Probe
		}{{"readinessProbe", ct.ReadinessProbe}, {"livenessProbe", ct.LivenessProbe}} {
			if err := checkProbe(probe.p, ct, vars); err != nil {
				fail("container %s: %s: %v", ct.Name, probe.kind, err)
			}
		}
		for _, n := range slices.Sorted(mapKeys(vars)) {
			if bin != "" && !env[bin][n] {
				fail("container %s: %s is not a variable %s reads (its --help names none such)", ct.Name, n, bin)
			}
		}
		for _, n := range slices.Sorted(mapKeys(vars)) {
			if err := c.checkAddress(d.Namespace, n, vars[n]); err != nil {
				fail("container %s: %v", ct.Name, err)
			}
		}
	}
	return errors.Join(errs...)
}

// checkImage: pinned by digest, or (before an overlay pins it) the
// project's own image of that binary.
func checkImage(ref, bin string, pinned bool) error {
	if digestRE.MatchString(ref) {
		return nil
	}
	if !pinned && bin != "" && strings.HasPrefix(ref, "ozsecrets/"+bin+":") {
		return nil
	}
	return fmt.Errorf("image %q: want it pinned by digest (IMAGE@sha256:…; an overlay's images: digest, see deploy/README.md)", ref)
}

// isPeerAddr reports whether a variable names another service's address:
// OZ_<SERVICE>_ADDR of a service dialled, not the gateway's own listen
// address OZ_GATEWAY_ADDR.
func isPeerAddr(name string) bool {
	return strings.HasSuffix(name, "_ADDR") && name != "OZ_GATEWAY_ADDR"
}

// checkAddress: a client's address for another service is one dns:///
// name that dial accepts, of a headless Service in the render, in the
// pod's namespace, on a port the Service has and its pods serve (clients
// of a headless Service connect to pod IPs, so the Service's port must be
// the container's).
func (c *cluster) checkAddress(ns, name, value string) error {
	if !isPeerAddr(name) {
		return nil
	}
	if err := dial.Check(dial.Split(value)); err != nil {
		return fmt.Errorf("%s=%q: %w", name, value, err)
	}
	hostPort, ok := strings.CutPrefix(value, "dns:///")
	if !ok {
		return fmt.Errorf("%s=%q: want dns:///SERVICE.%s.svc:PORT (a headless Service, balanced per call)", name, value, ns)
	}
	host, port, _ := net.SplitHostPort(hostPort)
	svcName, rest, _ := strings.Cut(host, ".")
	if rest != ns+".svc" && rest != ns+".svc.cluster.local" {
		return fmt.Errorf("%s=%q: want the name SERVICE.%s.svc", name, value, ns)
	}
	svc := c.services[ns+"/"+svcName]
	if svc == nil {
		return fmt.Errorf("%s=%q: no Service %s in namespace %s", name, value, svcName, ns)
	}
	if want := strings.ToUpper(svcName); name != "OZ_"+want+"_ADDR" {
		return fmt.Errorf("%s=%q: the Service %s, want OZ_%s_ADDR's own service", name, value, svcName, want)
	}
	p, _ := strconv.Atoi(port)
	found := false
	for _, sp := range svc.Spec.Ports {
		if int(sp.Port) == p {
			found = true
		}
	}
	if !found {
		return fmt.Errorf("%s=%q: Service %s has no port %d", name, value, svcName, p)
	}
	served := false
	for _, d := range c.deployments {
		if d.Namespace != ns || !selects(svc.Spec.Selector, d.Spec.Template.Labels) {
			continue
		}
		for _, ct := range d.Spec.Template.Spec.Containers {
			for _, cp := range ct.Ports {
				if int(cp.ContainerPort) == p {
					served = true
				}
			}
		}
	}
	if !served {
		return fmt.Errorf("%s=%q: no pod of Service %s has containerPort %d (a headless Service is dialled on the pods' own port)", name, value, svcName, p)
	}
	return nil
}

// dialledHosts are the names dialled by dns:///, by service.
func (c *cluster) dialledHosts() map[string]string {
	out := map[string]string{}
	for _, d := range c.deployments {
		for _, ct := range d.Spec.Template.Spec.Containers {
			for _, e := range ct.Env {
				if hp, ok := strings.CutPrefix(e.Value, "dns:///"); ok && isPeerAddr(e.Name) {
					host, _, _ := net.SplitHostPort(hp)
					svc, _, _ := strings.Cut(host, ".")
					out[svc] = host
				}
			}
		}
	}
	return out
}

// checkProbe: present, not exec (the images have no shell), on a port the
// container declares; a gRPC probe on the health port the binary is told
// to serve (OZ_HEALTH_LISTEN), since the service port needs mutual TLS.
func checkProbe(p *corev1.Probe, ct corev1.Container, vars map[string]string) error {
	if p == nil {
		return errors.New("missing")
	}
	declared := func(port int32) bool {
		return slices.ContainsFunc(ct.Ports, func(cp corev1.ContainerPort) bool { return cp.ContainerPort == port })
	}
	switch {
	case p.Exec != nil:
		return errors.New("exec: the distroless images have no shell or probe binary")
	case p.GRPC != nil:
		if !declared(p.GRPC.Port) {
			return fmt.Errorf("gRPC probe on port %d, which the container does not declare", p.GRPC.Port)
		}
		if want := fmt.Sprintf(":%d", p.GRPC.Port); vars["OZ_HEALTH_LISTEN"] != want {
			return fmt.Errorf("gRPC probe on port %d, but OZ_HEALTH_LISTEN=%q (want %q: the plain-text health port)", p.GRPC.Port, vars["OZ_HEALTH_LISTEN"], want)
		}
	case p.HTTPGet != nil:
		port := p.HTTPGet.Port
		ok := port.StrVal != "" && slices.ContainsFunc(ct.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == port.StrVal })
		if !ok && !declared(port.IntVal) {
			return fmt.Errorf("httpGet on port %s, which the container does not declare", port.String())
		}
	case p.TCPSocket != nil:
	default:
		return errors.New("no handler")
	}
	return nil
}

// containerEnv gathers a container's variables, from env and from the
// ConfigMaps of envFrom (which must exist in the render); a value from a
// Secret is "".
func (c *cluster) containerEnv(ns string, ct corev1.Container) (map[string]string, error) {
	out := map[string]string{}
	var errs []error
	for _, from := range ct.EnvFrom {
		if from.ConfigMapRef == nil {
			errs = append(errs, errors.New("envFrom: only ConfigMaps"))
			continue
		}
		cm := c.configMaps[ns+"/"+from.ConfigMapRef.Name]
		if cm == nil {
			errs = append(errs, fmt.Errorf("envFrom: no ConfigMap %s", from.ConfigMapRef.Name))
			continue
		}
		for k, v := range cm.Data {
			out[from.Prefix+k] = v
		}
	}
	for _, e := range ct.Env {
		if _, dup := out[e.Name]; dup {
			errs = append(errs, fmt.Errorf("%s set twice", e.Name))
		}
		out[e.Name] = e.Value
	}
	return out, errors.Join(errs...)
}

// certManagerNames are the DNS names of each cert-manager Certificate of
// the example, by the Secret it writes.
func certManagerNames(path string) (map[string][]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for doc := range strings.SplitSeq(string(data), "\n---\n") {
		var cert struct {
			Kind string `json:"kind"`
			Spec struct {
				SecretName string   `json:"secretName"`
				DNSNames   []string `json:"dnsNames"`
			} `json:"spec"`
		}
		if err := yaml.Unmarshal([]byte(doc), &cert); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if cert.Kind == "Certificate" {
			out[cert.Spec.SecretName] = cert.Spec.DNSNames
		}
	}
	return out, nil
}

func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// imageName is the last path element of an image reference, without tag
// or digest: "registry/oz/ozresolverd@sha256:…" → "ozresolverd".
func imageName(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	if i := strings.LastIndex(ref, "/"); i >= 0 {
		ref = ref[i+1:]
	}
	ref, _, _ = strings.Cut(ref, ":")
	return ref
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if !yield(k) {
				return
			}
		}
	}
}

func indent(err error) error {
	return errors.New("  " + strings.ReplaceAll(err.Error(), "\n", "\n  "))
}
