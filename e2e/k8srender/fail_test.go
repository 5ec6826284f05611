package k8srender_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// TestChecksRefuse feeds the checks a broken copy of base for each rule,
// and wants it refused for that reason: the checks can fail.
func TestChecksRefuse(t *testing.T) {
	env := envNames(t)
	base := render(t, k8sPath("base"))
	if err := base.check(env, false); err != nil {
		t.Fatalf("base itself fails, so the cases below prove nothing:\n%v", err)
	}
	no := false
	for _, tt := range []struct {
		name   string
		pinned bool
		break_ func(c *cluster)
		want   string
	}{
		{"ServiceNotHeadless", false, func(c *cluster) { c.services["oz/resolver"].Spec.ClusterIP = "" },
			`Service oz/resolver: clusterIP "", want None`},
		{"AddressNotDNS", false, func(c *cluster) { setEnv(c, "gateway", "OZ_RESOLVER_ADDR", "resolver:7451") },
			`OZ_RESOLVER_ADDR="resolver:7451": want dns:///SERVICE.oz.svc:PORT`},
		{"AddressNoPort", false, func(c *cluster) { setEnv(c, "gateway", "OZ_RESOLVER_ADDR", "dns:///resolver.oz.svc") },
			"missing port in address"},
		{"AddressOtherNamespace", false, func(c *cluster) { setEnv(c, "gateway", "OZ_AUDIT_ADDR", "dns:///audit.default.svc:7452") },
			"want the name SERVICE.oz.svc"},
		{"AddressNoService", false, func(c *cluster) { setEnv(c, "audit", "OZ_RESOLVER_ADDR", "dns:///resolvr.oz.svc:7451") },
			"no Service resolvr in namespace oz"},
		{"AddressOtherService", false, func(c *cluster) { setEnv(c, "resolver", "OZ_AUDIT_ADDR", "dns:///secretstore.oz.svc:7450") },
			"want OZ_SECRETSTORE_ADDR's own service"},
		{"AddressWrongPort", false, func(c *cluster) { setEnv(c, "secretstore", "OZ_AUDIT_ADDR", "dns:///audit.oz.svc:7451") },
			"Service audit has no port 7451"},
		{"ServicePortNotPods", false, func(c *cluster) {
			c.services["oz/audit"].Spec.Ports[0].Port = 443
			setEnv(c, "gateway", "OZ_AUDIT_ADDR", "dns:///audit.oz.svc:443")
		}, "no pod of Service audit has containerPort 443"},
		{"ImageByTag", true, func(c *cluster) {}, `image "ozsecrets/ozresolverd:dev": want it pinned by digest`},
		{"ForeignImage", false, func(c *cluster) { container(c, "audit").Image = "busybox:latest" },
			`image "busybox:latest" is none of`},
		{"Root", false, func(c *cluster) { container(c, "audit").SecurityContext.RunAsNonRoot = &no },
			"runAsNonRoot: want true"},
		{"WritableRoot", false, func(c *cluster) { container(c, "gateway").SecurityContext.ReadOnlyRootFilesystem = nil },
			"readOnlyRootFilesystem: want true"},
		{"Escalation", false, func(c *cluster) { container(c, "resolver").SecurityContext.AllowPrivilegeEscalation = nil },
			"allowPrivilegeEscalation: want false"},
		{"CapabilityKept", false, func(c *cluster) { container(c, "resolver").SecurityContext.Capabilities.Drop = nil },
			"capabilities: want drop [ALL]"},
		{"NoMemoryLimit", false, func(c *cluster) { delete(container(c, "secretstore").Resources.Limits, corev1.ResourceMemory) },
			"resources.limits.memory: missing"},
		{"ZeroCPURequest", false, func(c *cluster) {
			container(c, "secretstore").Resources.Requests[corev1.ResourceCPU] = resource.Quantity{}
		},
			"resources.requests.cpu: missing"},
		{"NoReadiness", false, func(c *cluster) { container(c, "gateway").ReadinessProbe = nil },
			"readinessProbe: missing"},
		{"ProbeOnServicePort", false, func(c *cluster) { container(c, "audit").LivenessProbe.GRPC.Port = 7452 },
			`gRPC probe on port 7452, but OZ_HEALTH_LISTEN=":7462"`},
		{"ExecProbe", false, func(c *cluster) {
			p := container(c, "resolver").ReadinessProbe
			p.GRPC, p.Exec = nil, &corev1.ExecAction{Command: []string{"true"}}
		}, "exec: the distroless images have no shell"},
		{"UnknownVariable", false, func(c *cluster) { setEnv(c, "resolver", "OZ_RESOLVER_LISTEN_ADDR", ":7451") },
			"OZ_RESOLVER_LISTEN_ADDR is not a variable ozresolverd reads"},
		{"VariableOfAnotherBinary", false, func(c *cluster) { setEnv(c, "gateway", "OZ_KEK_FILE", "/etc/oz/keyring/keyring.json") },
			"OZ_KEK_FILE is not a variable ozgateway reads"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := render(t, k8sPath("base"))
			tt.break_(c)
			err := c.check(env, tt.pinned)
			if err == nil {
				t.Fatalf("got no error, want one containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got\n%v\nwant an error containing %q", err, tt.want)
			}
		})
	}
}

// container is the first container of the Deployment named.
func container(c *cluster, deployment string) *corev1.Container {
	for _, d := range c.deployments {
		if d.Name == deployment {
			return &d.Spec.Template.Spec.Containers[0]
		}
	}
	panic("no Deployment " + deployment)
}

// setEnv sets (or adds) a variable of the Deployment's container.
func setEnv(c *cluster, deployment, name, value string) {
	ct := container(c, deployment)
	for i := range ct.Env {
		if ct.Env[i].Name == name {
			ct.Env[i].Value = value
			return
		}
	}
	ct.Env = append(ct.Env, corev1.EnvVar{Name: name, Value: value})
}
