package deploy_test

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

const nameLabel = "app.kubernetes.io/name"

// checkOptions relax checkCluster for the components that change on purpose
// what base does.
type checkOptions struct {
	tcpProbes bool // components/tcp-probes: TCP probes on the service port
}

// cluster is a rendered set of objects, by kind and name.
type cluster struct {
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	configMaps  map[string]*corev1.ConfigMap
	accounts    map[string]*corev1.ServiceAccount
	pdbs        map[string]*policyv1.PodDisruptionBudget
	policies    []*netv1.NetworkPolicy
	ingresses   []*netv1.Ingress
	namespaces  []string
}

func index(objs []object) (*cluster, error) {
	c := &cluster{
		deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{}, accounts: map[string]*corev1.ServiceAccount{},
		pdbs: map[string]*policyv1.PodDisruptionBudget{},
	}
	seen := map[string]bool{}
	for _, o := range objs {
		if seen[o.id()] {
			return nil, fmt.Errorf("%s: %s defined twice", o.source, o.id())
		}
		seen[o.id()] = true
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			c.deployments[o.name] = v
		case *corev1.Service:
			c.services[o.name] = v
		case *corev1.ConfigMap:
			c.configMaps[o.name] = v
		case *corev1.ServiceAccount:
			c.accounts[o.name] = v
		case *policyv1.PodDisruptionBudget:
			c.pdbs[o.name] = v
		case *netv1.NetworkPolicy:
			c.policies = append(c.policies, v)
		case *netv1.Ingress:
			c.ingresses = append(c.ingresses, v)
		case *corev1.Namespace:
			c.namespaces = append(c.namespaces, o.name)
		case *corev1.Secret:
			return nil, fmt.Errorf("%s: Secrets do not belong in the manifests (keys and certificates are created apart; see deploy/README.md)", o.source)
		}
	}
	return c, nil
}

// checkCluster holds rendered manifests to the rules of deploy/README.md.
func checkCluster(objs []object, opt checkOptions) error {
	c, err := index(objs)
	if err != nil {
		return err
	}
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	for name := range c.deployments {
		if _, ok := services[name]; !ok {
			fail("Deployment %s: not a service of oz", name)
		}
	}
	for _, name := range sortedKeys(services) {
		s := services[name]
		if d := c.deployments[name]; d == nil {
			fail("no Deployment %s", name)
		} else if err := checkDeployment(c, name, s, d, opt); err != nil {
			fail("Deployment %s:\n  %w", name, indent(err))
		}
		if svc := c.services[name]; svc == nil {
			fail("no Service %s", name)
		} else if d := c.deployments[name]; d != nil {
			if err := checkService(name, s, svc, d, c.ingresses); err != nil {
				fail("Service %s:\n  %w", name, indent(err))
			}
		}
		if p := c.pdbs[name]; p == nil {
			fail("no PodDisruptionBudget %s", name)
		} else if p.Spec.Selector == nil || p.Spec.Selector.MatchLabels[nameLabel] != name {
			fail("PodDisruptionBudget %s does not select the %s pods", name, name)
		}
	}
	for name, svc := range c.services {
		if _, ok := services[name]; !ok {
			fail("Service %s: not a service of oz", name)
		} else if t := svc.Spec.Type; !services[name].public && t != "" && t != corev1.ServiceTypeClusterIP {
			fail("Service %s is %s: only the gateway may be reachable from outside", name, t)
		}
	}
	if err := checkNetworkPolicies(c); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func checkDeployment(c *cluster, name string, s service, d *appsv1.Deployment, opt checkOptions) error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		fail("replicas: want 2 or more")
	}
	pod := d.Spec.Template
	if pod.Labels[nameLabel] != name {
		fail("pod label %s=%q, want %q", nameLabel, pod.Labels[nameLabel], name)
	}
	if d.Spec.Selector == nil || len(d.Spec.Selector.MatchExpressions) > 0 || d.Spec.Selector.MatchLabels[nameLabel] != name {
		fail("selector: want matchLabels %s: %s", nameLabel, name)
	} else {
		for k, v := range d.Spec.Selector.MatchLabels {
			if pod.Labels[k] != v {
				fail("selector %s=%s does not match the pod's labels", k, v)
			}
		}
	}
	if s.metrics != 0 {
		// Prometheus' kubernetes_sd pod role, by the usual annotations.
		for k, v := range map[string]string{
			"prometheus.io/scrape": "true",
			"prometheus.io/port":   strconv.Itoa(s.metrics),
			"prometheus.io/path":   "/metrics",
		} {
			if pod.Annotations[k] != v {
				fail("pod annotation %s=%q, want %q (the metrics port)", k, pod.Annotations[k], v)
			}
		}
	}
	spec := pod.Spec
	if spec.ServiceAccountName != name || c.accounts[name] == nil {
		fail("serviceAccountName %q: want the ServiceAccount %q, defined", spec.ServiceAccountName, name)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		fail("automountServiceAccountToken: want false (the services never call the Kubernetes API)")
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		fail("host namespaces")
	}
	psc := spec.SecurityContext
	podNonRoot := psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot
	if psc != nil && psc.RunAsUser != nil && *psc.RunAsUser == 0 {
		fail("pod runAsUser 0")
	}
	if len(spec.Containers) != 1 {
		fail("want one container, have %d", len(spec.Containers))
	}
	volumes := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		volumes[v.Name] = v
	}
	for _, ct := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
		if err := checkContainer(c, name, s, ct, podNonRoot, volumes, opt); err != nil {
			fail("container %s:\n  %w", ct.Name, indent(err))
		}
	}
	return errors.Join(errs...)
}

func checkContainer(c *cluster, name string, s service, ct corev1.Container, podNonRoot bool, volumes map[string]corev1.Volume, opt checkOptions) error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if img := imageName(ct.Image); img != s.bin {
		fail("image %q: want the %s image (deploy/docker/Dockerfile.%s)", ct.Image, s.bin, s.bin)
	}
	sc := ct.SecurityContext
	switch {
	case sc == nil:
		fail("no securityContext")
	default:
		if !podNonRoot && (sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot) {
			fail("runAsNonRoot: want true")
		}
		if sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot {
			fail("runAsNonRoot: false")
		}
		if sc.RunAsUser != nil && *sc.RunAsUser == 0 {
			fail("runAsUser 0")
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			fail("readOnlyRootFilesystem: want true")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			fail("allowPrivilegeEscalation: want false")
		}
		if sc.Privileged != nil && *sc.Privileged {
			fail("privileged")
		}
		if sc.Capabilities == nil || !contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			fail("capabilities: want drop [ALL] and nothing added")
		}
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if q, ok := ct.Resources.Limits[r]; !ok || q.IsZero() {
			fail("resources.limits.%s: missing", r)
		}
		if q, ok := ct.Resources.Requests[r]; !ok || q.IsZero() {
			fail("resources.requests.%s: missing", r)
		}
	}

	// Ports and probes.
	ports := map[string]int32{}
	for _, p := range ct.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if !hasPort(ct, int32(s.port)) {
		fail("no containerPort %d", s.port)
	}
	if s.health != 0 && !hasPort(ct, int32(s.health)) {
		fail("no containerPort %d (health)", s.health)
	}
	if s.metrics != 0 && !hasPort(ct, int32(s.metrics)) {
		fail("no containerPort %d (metrics)", s.metrics)
	}
	for kind, p := range map[string]*corev1.Probe{"livenessProbe": ct.LivenessProbe, "readinessProbe": ct.ReadinessProbe} {
		if p == nil {
			fail("no %s", kind)
			continue
		}
		if err := checkProbe(p, s, ports, opt); err != nil {
			fail("%s: %v", kind, err)
		}
	}

	// Configuration: every variable is one the binary reads.
	env, err := containerEnv(c, ct)
	if err != nil {
		fail("%v", err)
	}
	var names []string
	for n := range env {
		names = append(names, n)
	}
	sort.Strings(names)
	if err := checkEnv(s.bin, names); err != nil {
		fail("%v", err)
	}
	if err := checkFlags(s.bin, append(append([]string{}, ct.Command...), ct.Args...)); err != nil {
		fail("%v", err)
	}
	if err := checkServiceEnv(name, s, env); err != nil {
		fail("%v", err)
	}
	if _, fromSecret := env["OZ_KEYRING"]; fromSecret && env["OZ_KEYRING"].secret == "" {
		fail("OZ_KEYRING must come from a Secret (valueFrom.secretKeyRef), never a literal")
	}

	// Files named by the configuration are on mounted volumes: certificates
	// and keys from Secrets, the data directory writable.
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range ct.VolumeMounts {
		if _, ok := volumes[m.Name]; !ok {
			fail("volumeMount %s: no such volume", m.Name)
		}
		mounts[m.MountPath] = m
	}
	for _, n := range names {
		v := env[n]
		if !strings.HasPrefix(v.value, "/") {
			continue
		}
		m, ok := mountOf(mounts, v.value)
		if !ok {
			fail("%s=%s is on no mounted volume (the root filesystem is read-only)", n, v.value)
			continue
		}
		vol := volumes[m.Name]
		switch {
		case n == "OZ_DATA_DIR":
			if m.ReadOnly || (vol.EmptyDir == nil && vol.PersistentVolumeClaim == nil) {
				fail("OZ_DATA_DIR=%s: want a writable emptyDir or PersistentVolumeClaim", v.value)
			}
		case strings.Contains(n, "TLS") || n == "OZ_KEK_FILE":
			if vol.Secret == nil || !m.ReadOnly {
				fail("%s=%s: want a read-only mount of a Secret", n, v.value)
			}
		}
	}
	return errors.Join(errs...)
}

// checkServiceEnv checks the values that make the services find each other.
func checkServiceEnv(name string, s service, env map[string]envValue) error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	// The listen address: on every interface, on the service's port. The
	// variable is the one -listen names in --help.
	listenVar := envNameRE.FindString(helps[s.bin].flags["listen"])
	if v := env[listenVar].value; listenVar == "" || (v != fmt.Sprintf(":%d", s.port) && v != fmt.Sprintf("0.0.0.0:%d", s.port)) {
		fail("%s=%q: want \":%d\"", listenVar, v, s.port)
	}
	if s.health != 0 {
		if v := env["OZ_HEALTH_LISTEN"].value; v != fmt.Sprintf(":%d", s.health) {
			fail("OZ_HEALTH_LISTEN=%q: want \":%d\" (the probes' port)", v, s.health)
		}
	}
	// Metrics: plain HTTP on their own port, on every interface (the
	// variable is the one -metrics-listen names in --help).
	if s.metrics != 0 {
		metricsVar := envNameRE.FindString(helps[s.bin].flags["metrics-listen"])
		switch v := env[metricsVar].value; {
		case metricsVar == "":
			fail("%s has no -metrics-listen flag", s.bin)
		case s.metrics == s.port || s.metrics == s.health:
			fail("metrics port %d: want a port of its own (the service port requires mutual TLS; the health port serves gRPC only)", s.metrics)
		case v != fmt.Sprintf(":%d", s.metrics):
			fail("%s=%q: want \":%d\" (the scraped port)", metricsVar, v, s.metrics)
		}
	}
	for _, callee := range callees(name) {
		n := "OZ_" + strings.ToUpper(callee) + "_ADDR"
		// A headless Service by its DNS name: the client balances each call
		// over every pod (lib/dial), where a ClusterIP would pin it to one.
		if want := fmt.Sprintf("dns:///%s.oz.svc:%d", callee, services[callee].port); env[n].value != want {
			fail("%s=%q: want %q (the %s Service)", n, env[n].value, want, callee)
		}
	}
	store, hasStore := env["OZ_STORE"]
	switch {
	case s.stateful && !strings.HasPrefix(store.value, "etcd:https://"):
		fail("OZ_STORE=%q: want etcd:https://… (replicas share one store)", store.value)
	case s.stateful:
		for _, n := range []string{"OZ_STORE_TLS_CA", "OZ_STORE_TLS_CERT", "OZ_STORE_TLS_KEY"} {
			if env[n].value == "" {
				fail("%s: missing (etcd is reached by mutual TLS)", n)
			}
		}
	case hasStore:
		fail("OZ_STORE set on a stateless service")
	}
	if _, dev := env["OZ_DEV"]; dev {
		fail("OZ_DEV: development mode in a deployment")
	}
	if s.bin == "ozsecretstored" {
		_, file := env["OZ_KEK_FILE"]
		_, inline := env["OZ_KEYRING"]
		if file == inline {
			fail("the keyring: want exactly one of OZ_KEK_FILE (a mounted Secret) and OZ_KEYRING (from a Secret)")
		}
	}
	return errors.Join(errs...)
}

// envValue is a variable's literal value, or the Secret it comes from.
type envValue struct {
	value  string
	secret string
}

// containerEnv gathers a container's variables, from env and envFrom.
func containerEnv(c *cluster, ct corev1.Container) (map[string]envValue, error) {
	out := map[string]envValue{}
	var errs []error
	for _, from := range ct.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm := c.configMaps[from.ConfigMapRef.Name]
			if cm == nil {
				errs = append(errs, fmt.Errorf("envFrom: no ConfigMap %s", from.ConfigMapRef.Name))
				continue
			}
			for k, v := range cm.Data {
				out[from.Prefix+k] = envValue{value: v}
			}
		default:
			errs = append(errs, errors.New("envFrom: only ConfigMaps (Secrets are mounted or referenced by key)"))
		}
	}
	for _, e := range ct.Env {
		if _, dup := out[e.Name]; dup {
			errs = append(errs, fmt.Errorf("%s set twice", e.Name))
		}
		v := envValue{value: e.Value}
		if e.ValueFrom != nil {
			switch {
			case e.ValueFrom.SecretKeyRef != nil:
				v.secret = e.ValueFrom.SecretKeyRef.Name
			case e.ValueFrom.ConfigMapKeyRef != nil:
				cm := c.configMaps[e.ValueFrom.ConfigMapKeyRef.Name]
				if cm == nil {
					errs = append(errs, fmt.Errorf("%s: no ConfigMap %s", e.Name, e.ValueFrom.ConfigMapKeyRef.Name))
				} else {
					v.value = cm.Data[e.ValueFrom.ConfigMapKeyRef.Key]
				}
			}
		}
		out[e.Name] = v
	}
	return out, errors.Join(errs...)
}

func checkProbe(p *corev1.Probe, s service, ports map[string]int32, opt checkOptions) error {
	switch {
	case s.public:
		h := p.HTTPGet
		if h == nil || h.Scheme != corev1.URISchemeHTTPS || h.Path != "/healthz" || resolvePort(h.Port, ports) != int32(s.port) {
			return fmt.Errorf("want an HTTPS GET /healthz on port %d", s.port)
		}
	case opt.tcpProbes && p.TCPSocket != nil:
		if resolvePort(p.TCPSocket.Port, ports) != int32(s.port) {
			return fmt.Errorf("tcpSocket: want port %d", s.port)
		}
	default:
		// Native gRPC probes: plain text, so on the health port.
		if p.GRPC == nil || p.GRPC.Port != int32(s.health) {
			return fmt.Errorf("want a gRPC probe on the health port %d", s.health)
		}
	}
	if p.Exec != nil {
		return errors.New("exec probe: the image has no shell or probe binary")
	}
	return nil
}

func checkService(name string, s service, svc *corev1.Service, d *appsv1.Deployment, ingresses []*netv1.Ingress) error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(svc.Spec.Selector) != 1 || svc.Spec.Selector[nameLabel] != name {
		fail("selector: want %s: %s", nameLabel, name)
	}
	exposedByIngress := false
	for _, in := range ingresses {
		for _, r := range in.Spec.Rules {
			if r.HTTP == nil {
				continue
			}
			for _, p := range r.HTTP.Paths {
				if p.Backend.Service != nil && p.Backend.Service.Name == name {
					exposedByIngress = true
				}
			}
		}
		if b := in.Spec.DefaultBackend; b != nil && b.Service != nil && b.Service.Name == name {
			exposedByIngress = true
		}
	}
	t := svc.Spec.Type
	if s.public {
		if t != corev1.ServiceTypeLoadBalancer && t != corev1.ServiceTypeNodePort && !exposedByIngress {
			fail("type %q and no Ingress: the gateway must be reachable from outside", t)
		}
	} else {
		if t != "" && t != corev1.ServiceTypeClusterIP {
			fail("type %s: only the gateway may be reachable from outside", t)
		}
		if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			fail("clusterIP %q: want None (headless, so that clients balance calls over the pods)", svc.Spec.ClusterIP)
		}
		if exposedByIngress {
			fail("an Ingress exposes it: only the gateway may be reachable from outside")
		}
		if len(svc.Spec.ExternalIPs) > 0 {
			fail("externalIPs")
		}
	}
	if len(svc.Spec.Ports) != 1 {
		fail("want one port")
	}
	var ct corev1.Container
	if len(d.Spec.Template.Spec.Containers) > 0 {
		ct = d.Spec.Template.Spec.Containers[0]
	}
	ports := map[string]int32{}
	for _, p := range ct.Ports {
		ports[p.Name] = p.ContainerPort
	}
	for _, p := range svc.Spec.Ports {
		target := p.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(p.Port)
		}
		if resolvePort(target, ports) != int32(s.port) {
			fail("port %d targets %s, want the container's port %d", p.Port, target.String(), s.port)
		}
		if !s.public && p.Port != int32(s.port) {
			fail("port %d: want %d (the address the others are given)", p.Port, s.port)
		}
	}
	return errors.Join(errs...)
}

// checkNetworkPolicies: a default deny, and for each service exactly the
// ingress and egress its role needs.
func checkNetworkPolicies(c *cluster) error {
	var errs []error
	fail := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	defaultDeny := false
	for _, p := range c.policies {
		if len(p.Spec.PodSelector.MatchExpressions) > 0 {
			fail("NetworkPolicy %s: matchExpressions (use matchLabels, which this check can evaluate)", p.Name)
		}
		if len(p.Spec.PolicyTypes) == 0 {
			fail("NetworkPolicy %s: policyTypes must be explicit", p.Name)
		}
		if len(p.Spec.PodSelector.MatchLabels) == 0 && len(p.Spec.Ingress) == 0 && len(p.Spec.Egress) == 0 &&
			hasType(p, netv1.PolicyTypeIngress) && hasType(p, netv1.PolicyTypeEgress) {
			defaultDeny = true
		}
	}
	if !defaultDeny {
		fail("no default-deny NetworkPolicy (podSelector {}, policyTypes Ingress and Egress, no rules)")
	}
	for _, name := range sortedKeys(services) {
		s := services[name]
		d := c.deployments[name]
		if d == nil {
			continue
		}
		podLabels := d.Spec.Template.Labels
		var in, out []string
		selected := 0
		for _, p := range c.policies {
			if !selects(p.Spec.PodSelector, podLabels) {
				continue
			}
			if len(p.Spec.PodSelector.MatchLabels) > 0 {
				selected++
			}
			if hasType(p, netv1.PolicyTypeIngress) {
				for _, r := range p.Spec.Ingress {
					in = append(in, flows(r.From, r.Ports)...)
				}
			}
			if hasType(p, netv1.PolicyTypeEgress) {
				for _, r := range p.Spec.Egress {
					out = append(out, flows(r.To, r.Ports)...)
				}
			}
		}
		if selected == 0 {
			fail("no NetworkPolicy for %s", name)
		}
		var wantIn, wantOut []string
		if s.public {
			wantIn = []string{fmt.Sprintf("anywhere→TCP/%d", s.port)}
		}
		for _, from := range callers[name] {
			wantIn = append(wantIn, fmt.Sprintf("%s→TCP/%d", from, s.port))
		}
		if s.metrics != 0 {
			wantIn = append(wantIn, fmt.Sprintf("namespaces kubernetes.io/metadata.name=%s→TCP/%d", monitoringNamespace, s.metrics))
		}
		for _, to := range callees(name) {
			wantOut = append(wantOut, fmt.Sprintf("%s→TCP/%d", to, services[to].port))
		}
		if s.stateful {
			wantOut = append(wantOut, "etcd→TCP/2379")
		}
		wantOut = append(wantOut, "kube-dns→TCP/53", "kube-dns→UDP/53")
		if err := sameSet(in, wantIn); err != nil {
			fail("%s ingress: %v", name, err)
		}
		if err := sameSet(out, wantOut); err != nil {
			fail("%s egress: %v", name, err)
		}
	}
	return errors.Join(errs...)
}

// flows names each (peer, port) a rule allows: a peer is a pod's name label,
// "kube-dns", "anywhere" (no peers, or 0.0.0.0/0), or a description of
// something else ("namespaces SELECTOR", with " pods SELECTOR" when it also
// selects pods there); a rule without ports allows "any" port.
func flows(peers []netv1.NetworkPolicyPeer, ports []netv1.NetworkPolicyPort) []string {
	var names []string
	if len(peers) == 0 {
		names = []string{"anywhere"}
	}
	for _, p := range peers {
		switch {
		case p.IPBlock != nil && (p.IPBlock.CIDR == "0.0.0.0/0" || p.IPBlock.CIDR == "::/0"):
			names = append(names, "anywhere")
		case p.IPBlock != nil:
			names = append(names, "ipBlock "+p.IPBlock.CIDR)
		case p.NamespaceSelector != nil && p.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == "kube-system" &&
			p.PodSelector != nil && p.PodSelector.MatchLabels["k8s-app"] == "kube-dns":
			names = append(names, "kube-dns")
		case p.NamespaceSelector != nil && p.PodSelector != nil:
			names = append(names, "namespaces "+metav1.FormatLabelSelector(p.NamespaceSelector)+" pods "+metav1.FormatLabelSelector(p.PodSelector))
		case p.NamespaceSelector != nil:
			names = append(names, "namespaces "+metav1.FormatLabelSelector(p.NamespaceSelector))
		case p.PodSelector != nil && len(p.PodSelector.MatchLabels) == 1 && p.PodSelector.MatchLabels[nameLabel] != "":
			names = append(names, p.PodSelector.MatchLabels[nameLabel])
		case p.PodSelector != nil:
			names = append(names, "pods "+metav1.FormatLabelSelector(p.PodSelector))
		}
	}
	var out []string
	for _, n := range names {
		if len(ports) == 0 {
			out = append(out, n+"→any port")
		}
		for _, p := range ports {
			proto := "TCP"
			if p.Protocol != nil {
				proto = string(*p.Protocol)
			}
			port := "any port"
			if p.Port != nil {
				port = p.Port.String()
			}
			if p.EndPort != nil {
				port += "-" + strconv.Itoa(int(*p.EndPort))
			}
			out = append(out, n+"→"+proto+"/"+port)
		}
	}
	return out
}

func selects(sel metav1.LabelSelector, lbls map[string]string) bool {
	if len(sel.MatchExpressions) > 0 {
		return false
	}
	for k, v := range sel.MatchLabels {
		if lbls[k] != v {
			return false
		}
	}
	return true
}

func hasType(p *netv1.NetworkPolicy, t netv1.PolicyType) bool { return contains(p.Spec.PolicyTypes, t) }

// sameSet reports what got has that want lacks, and the reverse.
func sameSet(got, want []string) error {
	g, w := map[string]bool{}, map[string]bool{}
	for _, x := range got {
		g[x] = true
	}
	for _, x := range want {
		w[x] = true
	}
	var extra, missing []string
	for x := range g {
		if !w[x] {
			extra = append(extra, x)
		}
	}
	for x := range w {
		if !g[x] {
			missing = append(missing, x)
		}
	}
	sort.Strings(extra)
	sort.Strings(missing)
	var parts []string
	if len(extra) > 0 {
		parts = append(parts, "allows more than it should: "+strings.Join(extra, ", "))
	}
	if len(missing) > 0 {
		parts = append(parts, "does not allow: "+strings.Join(missing, ", "))
	}
	if len(parts) > 0 {
		return errors.New(strings.Join(parts, "; "))
	}
	return nil
}

func resolvePort(p intstr.IntOrString, named map[string]int32) int32 {
	if p.Type == intstr.String {
		return named[p.StrVal]
	}
	return p.IntVal
}

func hasPort(ct corev1.Container, port int32) bool {
	for _, p := range ct.Ports {
		if p.ContainerPort == port {
			return true
		}
	}
	return false
}

// mountOf finds the mount a path lies under.
func mountOf(mounts map[string]corev1.VolumeMount, p string) (corev1.VolumeMount, bool) {
	best, found := corev1.VolumeMount{}, false
	for mp, m := range mounts {
		if (p == mp || strings.HasPrefix(p, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best.MountPath) {
			best, found = m, true
		}
	}
	return best, found
}

// imageName is the last path element of an image reference, without tag
// or digest: "registry/ozsecrets/ozresolverd:1.0" → "ozresolverd".
func imageName(ref string) string {
	ref, _, _ = strings.Cut(ref, "@")
	base := path.Base(ref)
	base, _, _ = strings.Cut(base, ":")
	return base
}

func sortedKeys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// indent makes a multi-line error readable inside another.
func indent(err error) error {
	return errors.New(strings.ReplaceAll(err.Error(), "\n", "\n  "))
}
