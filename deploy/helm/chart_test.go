// Package helm holds keygate's Helm chart (keygate/); its test renders the
// chart with Helm's own library and checks every manifest against the
// Kubernetes API types.
//
// Why typed decoding rather than kubeconform: kubeconform fetches its JSON
// schemas from the network at run time, and tests here run offline with
// only the Go module proxy. The Kubernetes API's own Go types
// (k8s.io/api, and the Prometheus Operator's for ServiceMonitor), decoded
// strictly (an unknown or misspelt field, or a value of the wrong type, is
// an error), are the schemas the API server is generated from, pinned in
// go.mod. cert-manager's types are not served as a small module, so its
// Certificate is checked against the fields of its v1 schema written out
// below.
package helm

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
)

// certificate is cert-manager.io/v1 Certificate, as far as the chart uses it.
type certificate struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   map[string]any  `json:"metadata"`
	Spec       certificateSpec `json:"spec"`
}

type certificateSpec struct {
	SecretName  string   `json:"secretName"`
	Duration    string   `json:"duration,omitempty"`
	RenewBefore string   `json:"renewBefore,omitempty"`
	DNSNames    []string `json:"dnsNames,omitempty"`
	Usages      []string `json:"usages,omitempty"`
	PrivateKey  *struct {
		Algorithm      string `json:"algorithm,omitempty"`
		Size           int    `json:"size,omitempty"`
		RotationPolicy string `json:"rotationPolicy,omitempty"`
	} `json:"privateKey,omitempty"`
	IssuerRef struct {
		Name  string `json:"name"`
		Kind  string `json:"kind,omitempty"`
		Group string `json:"group,omitempty"`
	} `json:"issuerRef"`
}

// kinds maps apiVersion/kind to a new typed object to decode into.
var kinds = map[string]func() any{
	"apps/v1/Deployment":                      func() any { return &appsv1.Deployment{} },
	"v1/Service":                              func() any { return &corev1.Service{} },
	"v1/ServiceAccount":                       func() any { return &corev1.ServiceAccount{} },
	"v1/ConfigMap":                            func() any { return &corev1.ConfigMap{} },
	"v1/PersistentVolumeClaim":                func() any { return &corev1.PersistentVolumeClaim{} },
	"policy/v1/PodDisruptionBudget":           func() any { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return &networkingv1.NetworkPolicy{} },
	"monitoring.coreos.com/v1/ServiceMonitor": func() any { return &monitoringv1.ServiceMonitor{} },
	"cert-manager.io/v1/Certificate":          func() any { return &certificate{} },
}

// render renders the chart with values (YAML) over its defaults, as
// `helm template` does, schema validation included.
func render(t *testing.T, values string) (map[string]string, error) {
	t.Helper()
	ch, err := loader.Load("keygate")
	if err != nil {
		t.Fatalf("load the chart: %v", err)
	}
	var vals map[string]any
	if err := yaml.Unmarshal([]byte(values), &vals); err != nil {
		t.Fatalf("test values: %v", err)
	}
	top, err := util.ToRenderValues(ch, vals, common.ReleaseOptions{Name: "kg", Namespace: "keygate", IsInstall: true}, nil)
	if err != nil {
		return nil, err
	}
	return engine.Render(ch, top)
}

// manifests splits rendered files into documents, decodes each strictly
// into its API type and returns them by kind.
func manifests(t *testing.T, files map[string]string) map[string][]any {
	t.Helper()
	out := map[string][]any{}
	for name, body := range files {
		if !strings.HasSuffix(name, ".yaml") {
			continue
		}
		for _, doc := range strings.Split(body, "\n---") {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			js, err := yaml.YAMLToJSON([]byte(doc))
			if err != nil {
				t.Fatalf("%s: not YAML: %v\n%s", name, err, doc)
			}
			if string(js) == "null" {
				continue
			}
			var head struct{ APIVersion, Kind string }
			if err := json.Unmarshal(js, &head); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			mk, ok := kinds[head.APIVersion+"/"+head.Kind]
			if !ok {
				t.Fatalf("%s: %s %s has no schema in this test; add its API type", name, head.APIVersion, head.Kind)
			}
			obj := mk()
			dec := json.NewDecoder(bytes.NewReader(js))
			dec.DisallowUnknownFields()
			if err := dec.Decode(obj); err != nil {
				t.Fatalf("%s: %s does not match the Kubernetes schema: %v\n%s", name, head.Kind, err, doc)
			}
			out[head.Kind] = append(out[head.Kind], obj)
		}
	}
	return out
}

func one[T any](t *testing.T, m map[string][]any, kind string) *T {
	t.Helper()
	if len(m[kind]) != 1 {
		t.Fatalf("want one %s, got %d", kind, len(m[kind]))
	}
	return m[kind][0].(*T)
}

const production = `
replicaCount: 3
database: {existingSecret: keygate-db}
redis: {existingSecret: keygate-redis, key: redis-url}
kek: awskms://alias/keygate?region=eu-west-1
tls: {existingSecret: keygate-tls}
persistence: {enabled: false}
serviceAccount:
  annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::111122223333:role/keygate"}
serviceMonitor: {enabled: true, tokenSecret: {name: keygate-metrics}, labels: {release: prometheus}}
networkPolicy:
  gatewayFrom: [{namespaceSelector: {matchLabels: {keygate-client: "true"}}}]
config:
  audit: {fail_closed: true}
`

// TestChartRenders renders the chart for the set-ups docs/production.md
// describes and checks every manifest against the Kubernetes schemas and
// the promises the chart makes.
func TestChartRenders(t *testing.T) {
	cases := map[string]struct {
		values string
		check  func(t *testing.T, m map[string][]any)
	}{
		"trial: one replica, SQLite, self-signed TLS": {
			values: `tls: {selfSigned: true}`,
			check: func(t *testing.T, m map[string][]any) {
				d := one[appsv1.Deployment](t, m, "Deployment")
				c := d.Spec.Template.Spec.Containers[0]
				if env(c, "KEYGATE_TLS_SELF_SIGNED") != "true" || env(c, "KEYGATE_ALLOW_PLAIN_HTTP") != "" {
					t.Errorf("trial TLS env: %+v", c.Env)
				}
				if d.Spec.Template.Spec.Volumes[0].PersistentVolumeClaim == nil || len(m["PersistentVolumeClaim"]) != 1 {
					t.Error("SQLite and the master key are not on a persistent volume")
				}
				if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
					t.Error("two pods could share the SQLite volume during a rollout")
				}
			},
		},
		"production: replicas, PostgreSQL, Redis, KMS, TLS Secret, ServiceMonitor": {
			values: production,
			check: func(t *testing.T, m map[string][]any) {
				d := one[appsv1.Deployment](t, m, "Deployment")
				if *d.Spec.Replicas != 3 {
					t.Errorf("replicas %d", *d.Spec.Replicas)
				}
				c := d.Spec.Template.Spec.Containers[0]
				for name, secret := range map[string]string{"KEYGATE_DATABASE": "keygate-db/url", "KEYGATE_LIMITS_REDIS": "keygate-redis/redis-url"} {
					ref := envFrom(c, name)
					if ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name+"/"+ref.SecretKeyRef.Key != secret {
						t.Errorf("%s is not read from the Secret %s: %+v", name, secret, ref)
					}
				}
				if env(c, "KEYGATE_KEK") != "awskms://alias/keygate?region=eu-west-1" || env(c, "KEYGATE_TLS_CERT") != "/etc/keygate/tls/tls.crt" {
					t.Errorf("KEK or TLS env: %+v", c.Env)
				}
				if len(m["PersistentVolumeClaim"]) != 0 || d.Spec.Template.Spec.Volumes[0].EmptyDir == nil {
					t.Error("replicas with a database should not claim a volume each")
				}
				sm := one[monitoringv1.ServiceMonitor](t, m, "ServiceMonitor")
				ep := sm.Spec.Endpoints[0]
				if ep.Path != "/metrics" || ep.Port != "admin" || ep.Scheme == nil || strings.ToLower(string(*ep.Scheme)) != "https" ||
					ep.Authorization == nil || ep.Authorization.Credentials.Name != "keygate-metrics" {
					t.Errorf("ServiceMonitor endpoint: %+v", ep)
				}
				np := one[networkingv1.NetworkPolicy](t, m, "NetworkPolicy")
				if len(np.Spec.Ingress) != 2 || len(np.Spec.Ingress[0].From) != 1 || len(np.Spec.Ingress[1].From) != 1 ||
					np.Spec.Ingress[1].From[0].PodSelector == nil {
					t.Errorf("network policy: %+v", np.Spec.Ingress)
				}
				pdb := one[policyv1.PodDisruptionBudget](t, m, "PodDisruptionBudget")
				if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
					t.Errorf("PDB: %+v", pdb.Spec)
				}
				sa := one[corev1.ServiceAccount](t, m, "ServiceAccount")
				if sa.Annotations["eks.amazonaws.com/role-arn"] == "" {
					t.Error("the service account does not carry the KMS identity")
				}
				cm := one[corev1.ConfigMap](t, m, "ConfigMap")
				if !strings.Contains(cm.Data["keygate.yaml"], "fail_closed: true") {
					t.Errorf("config not rendered into keygate.yaml: %q", cm.Data["keygate.yaml"])
				}
			},
		},
		"cert-manager": {
			values: `
tls: {certManager: {enabled: true, issuerRef: {name: letsencrypt}}}
serviceMonitor: {enabled: true, tokenSecret: {name: keygate-metrics}}`,
			check: func(t *testing.T, m map[string][]any) {
				crt := one[certificate](t, m, "Certificate")
				if crt.Spec.SecretName != "kg-keygate-tls" || crt.Spec.IssuerRef.Name != "letsencrypt" ||
					!contains(crt.Spec.DNSNames, "kg-keygate.keygate.svc") {
					t.Errorf("certificate: %+v", crt.Spec)
				}
				d := one[appsv1.Deployment](t, m, "Deployment")
				found := false
				for _, v := range d.Spec.Template.Spec.Volumes {
					found = found || (v.Secret != nil && v.Secret.SecretName == crt.Spec.SecretName)
				}
				if !found {
					t.Error("the pod does not mount the certificate cert-manager issues")
				}
				sm := one[monitoringv1.ServiceMonitor](t, m, "ServiceMonitor")
				if tc := sm.Spec.Endpoints[0].TLSConfig; tc == nil || tc.CA.Secret == nil || tc.CA.Secret.Key != "ca.crt" {
					t.Errorf("ServiceMonitor does not verify with the issuer's CA: %+v", tc)
				}
			},
		},
		"behind a TLS-terminating mesh": {
			values: `allowPlainHTTP: true
networkPolicy: {enabled: false}
podDisruptionBudget: {enabled: false}`,
			check: func(t *testing.T, m map[string][]any) {
				c := one[appsv1.Deployment](t, m, "Deployment").Spec.Template.Spec.Containers[0]
				if env(c, "KEYGATE_ALLOW_PLAIN_HTTP") != "true" || c.ReadinessProbe.HTTPGet.Scheme != corev1.URISchemeHTTP {
					t.Errorf("plain HTTP set-up: %+v", c.Env)
				}
				if len(m["NetworkPolicy"])+len(m["PodDisruptionBudget"]) != 0 {
					t.Error("disabled objects rendered")
				}
			},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			files, err := render(t, tc.values)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			m := manifests(t, files)
			for _, kind := range []string{"Deployment", "Service", "ConfigMap"} {
				if len(m[kind]) != 1 {
					t.Fatalf("want one %s, got %d", kind, len(m[kind]))
				}
			}
			hardened(t, one[appsv1.Deployment](t, m, "Deployment"))
			noSecretsInClear(t, files)
			tc.check(t, m)
		})
	}
}

// hardened checks what every value set must keep: probes on /healthz and
// /readyz, a non-root read-only container with nothing to escalate, only
// the data directory writable, and a grace period longer than keygate's.
func hardened(t *testing.T, d *appsv1.Deployment) {
	t.Helper()
	ps := d.Spec.Template.Spec
	c := ps.Containers[0]
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" ||
		c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" ||
		c.StartupProbe == nil || c.StartupProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes: liveness %+v readiness %+v startup %+v", c.LivenessProbe, c.ReadinessProbe, c.StartupProbe)
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
		t.Errorf("container security context: %+v", sc)
	}
	psc := ps.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser == 0 ||
		psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context: %+v", psc)
	}
	for _, vm := range c.VolumeMounts {
		if !vm.ReadOnly && vm.MountPath != "/var/lib/keygate" {
			t.Errorf("%s is mounted writable; only the data directory may be", vm.MountPath)
		}
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources: %+v", c.Resources)
	}
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Error("the Kubernetes API token is mounted though keygate never calls the API")
	}
	if ps.TerminationGracePeriodSeconds == nil || *ps.TerminationGracePeriodSeconds <= 30 {
		t.Errorf("termination grace %v does not cover keygate's 30s shutdown grace", ps.TerminationGracePeriodSeconds)
	}
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		t.Error("no preStop pause: the pod stops before its endpoints are removed")
	}
	if len(c.Args) < 1 || c.Args[0] != "serve" {
		t.Errorf("args %v", c.Args)
	}
}

// noSecretsInClear: the manifests carry no URL with a password and no key.
func noSecretsInClear(t *testing.T, files map[string]string) {
	t.Helper()
	for name, body := range files {
		for _, bad := range []string{"postgres://", "redis://", "base64key://", "kg_live_", "kg_admin_", "BEGIN PRIVATE KEY", "kind: Secret"} {
			if strings.Contains(body, bad) {
				t.Errorf("%s holds %q", name, bad)
			}
		}
	}
}

// TestChartRefusesUnsafeValues: value sets that would serve keys in clear,
// lose the vault or split it are refused with a message that says what to
// set, and so are values the schema does not allow.
func TestChartRefusesUnsafeValues(t *testing.T) {
	for values, want := range map[string]string{
		``: "refuses plain HTTP there",
		`tls: {selfSigned: true}
replicaCount: 2`: "needs a shared PostgreSQL database",
		`tls: {selfSigned: true}
replicaCount: 2
database: {existingSecret: db}`: "needs a KEK every replica can open",
		`tls: {selfSigned: true}
persistence: {enabled: false}`: "loses the SQLite database",
		`tls: {selfSigned: true}
kek: base64key://smGbjm71Nxd1Ig5FS0wj9SlbzAIrnolCz9bQQ6uAhl4=`: "kek",
		`tls: {certManager: {enabled: true}}`: "issuerRef.name",
		`tls: {existingSecret: keygate-tls, certManager: {enabled: true, issuerRef: {name: my-issuer}}}`: "not both",
		`tls: {selfSigned: true}
serviceMonitor: {enabled: true}`: "tokenSecret.name",
		`tls: {selfSigned: true}
replicaCount: three`: "replicaCount",
		`tls: {selfSigned: true}
databse: {existingSecret: db}`: "databse",
		`tls: {selfSigned: true}
shutdownGrace: 1m`: "shutdownGrace",
	} {
		_, err := render(t, values)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("values %q: got %v, want an error naming %q", values, err, want)
		}
	}
}

func env(c corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func envFrom(c corev1.Container, name string) *corev1.EnvVarSource {
	for _, e := range c.Env {
		if e.Name == name {
			return e.ValueFrom
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
