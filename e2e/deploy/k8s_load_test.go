package deploy_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	netv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// object is one YAML document of deploy/k8s, decoded strictly into its type.
type object struct {
	source     string // file (and document number)
	apiVersion string
	kind       string
	name       string
	namespace  string
	obj        any // *appsv1.Deployment, *kustomization, ...
}

func (o object) id() string { return o.kind + "/" + o.namespace + "/" + o.name }

// kinds are the types deploy/k8s may hold. Strict decoding refuses any field
// the type does not have, anywhere in the document.
var kinds = map[string]func() any{
	"v1/Namespace":                                  func() any { return &corev1.Namespace{} },
	"v1/ServiceAccount":                             func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                                  func() any { return &corev1.ConfigMap{} },
	"v1/Secret":                                     func() any { return &corev1.Secret{} },
	"v1/Service":                                    func() any { return &corev1.Service{} },
	"apps/v1/Deployment":                            func() any { return &appsv1.Deployment{} },
	"networking.k8s.io/v1/NetworkPolicy":            func() any { return &netv1.NetworkPolicy{} },
	"networking.k8s.io/v1/Ingress":                  func() any { return &netv1.Ingress{} },
	"policy/v1/PodDisruptionBudget":                 func() any { return &policyv1.PodDisruptionBudget{} },
	"kustomize.config.k8s.io/v1beta1/Kustomization": func() any { return &kustomization{} },
	"kustomize.config.k8s.io/v1alpha1/Component":    func() any { return &kustomization{} },
	"cert-manager.io/v1/Issuer":                     func() any { return &cmIssuer{} },
	"cert-manager.io/v1/Certificate":                func() any { return &cmCertificate{} },
}

// clusterScoped kinds take no namespace.
var clusterScoped = map[string]bool{"Namespace": true}

// kustomization is the part of kustomize's Kustomization and Component this
// repository uses; anything else is refused, so that the in-test rendering
// (used when kubectl is not installed) cannot silently ignore it.
type kustomization struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Namespace  string           `json:"namespace,omitempty"`
	Resources  []string         `json:"resources,omitempty"`
	Components []string         `json:"components,omitempty"`
	Patches    []kustomizePatch `json:"patches,omitempty"`
}

type kustomizePatch struct {
	Patch  string           `json:"patch"`
	Target *kustomizeTarget `json:"target"`
}

type kustomizeTarget struct {
	Kind          string `json:"kind,omitempty"`
	Name          string `json:"name,omitempty"`
	LabelSelector string `json:"labelSelector,omitempty"`
}

// jsonPatchOp is one RFC 6902 operation of an inline patch.
type jsonPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
	From  string `json:"from,omitempty"`
}

// cert-manager's Issuer and Certificate, the fields the example uses.
type cmIssuer struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		SelfSigned *struct{} `json:"selfSigned,omitempty"`
		CA         *struct {
			SecretName string `json:"secretName"`
		} `json:"ca,omitempty"`
	} `json:"spec"`
}

type cmCertificate struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		SecretName  string   `json:"secretName"`
		CommonName  string   `json:"commonName"`
		DNSNames    []string `json:"dnsNames,omitempty"`
		IsCA        bool     `json:"isCA,omitempty"`
		Usages      []string `json:"usages,omitempty"`
		Duration    string   `json:"duration,omitempty"`
		RenewBefore string   `json:"renewBefore,omitempty"`
		PrivateKey  *struct {
			Algorithm      string `json:"algorithm,omitempty"`
			Size           int    `json:"size,omitempty"`
			Encoding       string `json:"encoding,omitempty"`
			RotationPolicy string `json:"rotationPolicy,omitempty"`
		} `json:"privateKey,omitempty"`
		IssuerRef struct {
			Name  string `json:"name"`
			Kind  string `json:"kind,omitempty"`
			Group string `json:"group,omitempty"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

// decodeDocs decodes every document of a YAML stream strictly.
func decodeDocs(data []byte, source string) ([]object, error) {
	var out []object
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		src := fmt.Sprintf("%s#%d", source, n)
		if j, err := yaml.YAMLToJSON(doc); err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		} else if string(j) == "null" {
			continue // comments only
		}
		var head struct {
			APIVersion string            `json:"apiVersion"`
			Kind       string            `json:"kind"`
			Metadata   metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal(doc, &head); err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		newObj, ok := kinds[head.APIVersion+"/"+head.Kind]
		if !ok {
			return nil, fmt.Errorf("%s: unexpected kind %q (apiVersion %q)", src, head.Kind, head.APIVersion)
		}
		obj := newObj()
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", src, head.Kind, err)
		}
		isKustomize := strings.HasPrefix(head.APIVersion, "kustomize.config.k8s.io/")
		if head.Metadata.Name == "" && !isKustomize {
			return nil, fmt.Errorf("%s: %s without metadata.name", src, head.Kind)
		}
		out = append(out, object{source: src, apiVersion: head.APIVersion, kind: head.Kind,
			name: head.Metadata.Name, namespace: head.Metadata.Namespace, obj: obj})
	}
}

// loadK8sTree decodes every YAML file under deploy/k8s, by path.
func loadK8sTree() (map[string][]object, error) {
	files := map[string][]object{}
	err := filepath.WalkDir(deployPath("k8s"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
			return fmt.Errorf("%s: only YAML belongs in deploy/k8s", path)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		objs, err := decodeDocs(data, path)
		if err != nil {
			return err
		}
		if len(objs) == 0 {
			return fmt.Errorf("%s: no document", path)
		}
		files[path] = objs
		return nil
	})
	return files, err
}

// renderBase builds deploy/k8s/base as kustomize would for what it uses:
// the listed resource files, with the namespace set. Every YAML file in the
// folder must be listed (a manifest nobody applies is a mistake).
func renderBase(dir string) ([]object, error) {
	data, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	docs, err := decodeDocs(data, filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	if len(docs) != 1 || docs[0].kind != "Kustomization" {
		return nil, errors.New("kustomization.yaml: want one Kustomization")
	}
	k := docs[0].obj.(*kustomization)
	if len(k.Components) > 0 || len(k.Patches) > 0 {
		return nil, errors.New("base kustomization: components and patches belong in overlays")
	}
	listed := map[string]bool{"kustomization.yaml": true}
	var out []object
	for _, res := range k.Resources {
		path := filepath.Join(dir, res)
		if fi, err := os.Stat(path); err != nil || fi.IsDir() || filepath.Dir(filepath.Clean(res)) != "." {
			return nil, fmt.Errorf("resource %q: want a file in %s", res, dir)
		}
		listed[res] = true
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		objs, err := decodeDocs(data, path)
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			if !clusterScoped[o.kind] && k.Namespace != "" {
				o.namespace = k.Namespace
				setNamespace(o.obj, k.Namespace)
			}
			out = append(out, o)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if !e.IsDir() && !listed[e.Name()] {
			return nil, fmt.Errorf("%s is not listed in %s/kustomization.yaml", e.Name(), dir)
		}
	}
	return out, nil
}

func setNamespace(obj any, ns string) {
	if m, ok := obj.(metav1.Object); ok {
		m.SetNamespace(ns)
	}
}

// kubectlKustomize renders dir with `kubectl kustomize`; ok is false when
// kubectl is not installed.
func kubectlKustomize(dir string) (objs []object, ok bool, err error) {
	kubectl, lerr := exec.LookPath("kubectl")
	if lerr != nil {
		return nil, false, nil
	}
	var stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", dir)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, true, fmt.Errorf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
	}
	objs, err = decodeDocs(out, "kubectl kustomize "+dir)
	return objs, true, err
}

func ids(objs []object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.id())
	}
	sort.Strings(out)
	return out
}

// checkComponent checks a Component without kustomize: each patch is an
// inline RFC 6902 patch and its target selects something in base.
func checkComponent(k *kustomization, base []object) error {
	var errs []error
	if len(k.Resources) > 0 || k.Namespace != "" {
		errs = append(errs, errors.New("a component here only patches"))
	}
	if len(k.Patches) == 0 {
		errs = append(errs, errors.New("no patches"))
	}
	for i, p := range k.Patches {
		var ops []jsonPatchOp
		if err := yaml.UnmarshalStrict([]byte(p.Patch), &ops); err != nil || len(ops) == 0 {
			errs = append(errs, fmt.Errorf("patch %d: not an inline RFC 6902 patch: %v", i, err))
		}
		for _, op := range ops {
			if !contains([]string{"add", "remove", "replace", "move", "copy", "test"}, op.Op) || !strings.HasPrefix(op.Path, "/") {
				errs = append(errs, fmt.Errorf("patch %d: bad operation %+v", i, op))
			}
		}
		if p.Target == nil {
			errs = append(errs, fmt.Errorf("patch %d: no target", i))
			continue
		}
		sel := labels.Everything()
		if p.Target.LabelSelector != "" {
			s, err := labels.Parse(p.Target.LabelSelector)
			if err != nil {
				errs = append(errs, fmt.Errorf("patch %d: %w", i, err))
				continue
			}
			sel = s
		}
		matched := 0
		for _, o := range base {
			m, ok := o.obj.(metav1.Object)
			if !ok || (p.Target.Kind != "" && o.kind != p.Target.Kind) || (p.Target.Name != "" && o.name != p.Target.Name) {
				continue
			}
			if sel.Matches(labels.Set(m.GetLabels())) {
				matched++
			}
		}
		if matched == 0 {
			errs = append(errs, fmt.Errorf("patch %d: target %+v selects nothing in base", i, *p.Target))
		}
	}
	return errors.Join(errs...)
}
