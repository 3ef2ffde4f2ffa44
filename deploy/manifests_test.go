package deploy

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/labels"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// kinds maps apiVersion/kind to the Go type a rendered object must decode
// into. An object of any other kind fails the test.
var kinds = map[string]func() any{
	"v1/ConfigMap":                            func() any { return new(corev1.ConfigMap) },
	"v1/Secret":                               func() any { return new(corev1.Secret) },
	"v1/ServiceAccount":                       func() any { return new(corev1.ServiceAccount) },
	"apps/v1/Deployment":                      func() any { return new(appsv1.Deployment) },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return new(networkingv1.NetworkPolicy) },
	"monitoring.coreos.com/v1/PodMonitor":     func() any { return new(monitoringv1.PodMonitor) },
	"monitoring.coreos.com/v1/PrometheusRule": func() any { return new(monitoringv1.PrometheusRule) },
}

// decodeStrict decodes a rendered object into its API type, refusing
// unknown and duplicated fields, as the API server's strict field
// validation does.
func decodeStrict(o object) (any, error) {
	newObj, ok := kinds[o.apiVersion+"/"+o.kind]
	if !ok {
		return nil, fmt.Errorf("%s %s: no known API type for %s/%s", o.kind, o.name, o.apiVersion, o.kind)
	}
	v := newObj()
	// As the API server decodes: duplicate YAML keys refused, then JSON
	// field names matched case-sensitively, unknown and duplicate fields
	// refused (sigs.k8s.io/yaml alone matches names case-insensitively, so
	// "readonly: true" would pass for readOnly and be dropped by the server).
	j, err := yaml.YAMLToJSONStrict(o.yaml)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", o.kind, o.name, err)
	}
	strictErrs, err := kjson.UnmarshalStrict(j, v)
	if err = errors.Join(append([]error{err}, strictErrs...)...); err != nil {
		return nil, fmt.Errorf("%s %s: %w", o.kind, o.name, err)
	}
	return v, nil
}

// decoded renders dir and decodes every object strictly.
func decoded(t *testing.T, dir string) []any {
	t.Helper()
	var out []any
	for _, o := range render(t, dir) {
		v, err := decodeStrict(o)
		if err != nil {
			t.Errorf("%s: %v", dir, err)
			continue
		}
		out = append(out, v)
	}
	return out
}

func TestRenderedObjectsDecodeStrictly(t *testing.T) {
	for _, dir := range kustomizations(t) {
		t.Run(dir, func(t *testing.T) { decoded(t, dir) })
	}
}

// The strict decoder is what catches a mistyped field: prove it does.
func TestDecodeStrictRefusesUnknownFields(t *testing.T) {
	for name, y := range map[string]string{
		"misspelt field":          "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      initContainers:\n        - name: authsidecar\n          restartPolcy: Always\n",
		"field in the wrong case": "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  template:\n    spec:\n      initContainers:\n        - name: authsidecar\n          volumeMounts: [{name: v, mountPath: /v, readonly: true}]\n",
		"duplicate key":           "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {A: one}\ndata: {A: two}\n",
		"wrong type":              "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: x}\nspec: {policyTypes: Egress}\n",
		"unknown kind":            "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n",
		"operator field":          "apiVersion: monitoring.coreos.com/v1\nkind: PodMonitor\nmetadata: {name: x}\nspec: {podMetricEndpoints: []}\n",
	} {
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(y), &head); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := decodeStrict(object{apiVersion: head.APIVersion, kind: head.Kind, name: "x", yaml: []byte(y)}); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}
}

// app is what a rendered app directory holds, found by kind.
type app struct {
	deployment *appsv1.Deployment
	configMaps map[string]*corev1.ConfigMap
	podMonitor *monitoringv1.PodMonitor
	policy     *networkingv1.NetworkPolicy
}

func appOf(t *testing.T, dir string) app {
	t.Helper()
	a := app{configMaps: map[string]*corev1.ConfigMap{}}
	for _, v := range decoded(t, dir) {
		switch v := v.(type) {
		case *appsv1.Deployment:
			a.deployment = v
		case *corev1.ConfigMap:
			a.configMaps[v.Name] = v
		case *monitoringv1.PodMonitor:
			a.podMonitor = v
		case *networkingv1.NetworkPolicy:
			a.policy = v
		}
	}
	if a.deployment == nil {
		t.Fatalf("%s renders no Deployment", dir)
	}
	return a
}

// appDirs are the kustomizations that deploy the app: all but monitoring.
func appDirs(t *testing.T) []string {
	var dirs []string
	for _, d := range kustomizations(t) {
		if d != "monitoring" {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// sidecar finds the authsidecar container and says whether it is a native
// sidecar (an init container).
func sidecar(t *testing.T, spec *corev1.PodSpec) (c *corev1.Container, native bool) {
	t.Helper()
	for i := range spec.InitContainers {
		if spec.InitContainers[i].Name == "authsidecar" {
			return &spec.InitContainers[i], true
		}
	}
	for i := range spec.Containers {
		if spec.Containers[i].Name == "authsidecar" {
			return &spec.Containers[i], false
		}
	}
	t.Fatal("no container named authsidecar")
	return nil, false
}

// env is the sidecar's environment as the kubelet would build it from
// envFrom ConfigMaps and literal env values (valueFrom entries excluded).
func (a app) env(t *testing.T, c *corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			t.Errorf("envFrom other than a ConfigMap: %+v", from)
			continue
		}
		cm, ok := a.configMaps[from.ConfigMapRef.Name]
		if !ok {
			t.Errorf("envFrom names ConfigMap %q, which is not rendered", from.ConfigMapRef.Name)
			continue
		}
		maps.Copy(env, cm.Data)
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil {
			env[e.Name] = e.Value
		}
	}
	return env
}

func TestSidecarContainer(t *testing.T) {
	for _, dir := range appDirs(t) {
		t.Run(dir, func(t *testing.T) {
			a := appOf(t, dir)
			spec := &a.deployment.Spec.Template.Spec
			c, native := sidecar(t, spec)
			legacy := strings.HasPrefix(dir, "overlays/pre-1.29")
			switch {
			case native == legacy:
				t.Errorf("native sidecar = %v, want %v", native, !legacy)
			case native && (c.RestartPolicy == nil || *c.RestartPolicy != corev1.ContainerRestartPolicyAlways):
				t.Errorf("native sidecar without restartPolicy Always: it would block the app's start")
			case !native && c.RestartPolicy != nil:
				t.Errorf("plain container with restartPolicy %q: refused by clusters older than 1.29", *c.RestartPolicy)
			}
			if !native && len(spec.InitContainers) != 0 {
				t.Errorf("pre-1.29 overlay keeps init containers %v", spec.InitContainers)
			}

			probes := map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe, "startup": c.StartupProbe}
			wantPath := map[string]string{"readiness": "/readyz", "liveness": "/healthz", "startup": "/readyz"}
			env := a.env(t, c)
			adminPort := portOf(t, env["AUTHSIDECAR_ADMIN_ADDR"])
			for name, p := range probes {
				if p == nil || p.HTTPGet == nil {
					t.Errorf("no HTTP %s probe", name)
					continue
				}
				if p.HTTPGet.Path != wantPath[name] {
					t.Errorf("%s probe path %q, want %q", name, p.HTTPGet.Path, wantPath[name])
				}
				if got := containerPort(t, c, p.HTTPGet.Port.String()); got != adminPort {
					t.Errorf("%s probe port %v is %d, the admin listener %d", name, p.HTTPGet.Port.String(), got, adminPort)
				}
			}
			if !strings.HasPrefix(env["AUTHSIDECAR_LISTEN_ADDR"], "127.0.0.1:") {
				t.Errorf("proxy listener %q is not on loopback: other pods could send requests with the app's credentials", env["AUTHSIDECAR_LISTEN_ADDR"])
			}
			for name, addr := range env {
				if name != "AUTHSIDECAR_LISTEN_ADDR" && unrouted(name) == "AUTHSIDECAR_LISTEN_ADDR" && !strings.HasPrefix(addr, "127.0.0.1:") {
					t.Errorf("route listener %s=%s is not on loopback: other pods could send requests with the app's credentials", name, addr)
				}
			}

			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if _, ok := c.Resources.Requests[r]; !ok {
					t.Errorf("no %s request", r)
				}
			}
			if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
				t.Errorf("no memory limit")
			}
			checkGOMEMLIMIT(t, c)
			checkSecurity(t, spec.SecurityContext, c.SecurityContext)

			grace := int64(30)
			if spec.TerminationGracePeriodSeconds != nil {
				grace = *spec.TerminationGracePeriodSeconds
			}
			if d := env["AUTHSIDECAR_SHUTDOWN_TIMEOUT"]; d == "" || seconds(t, d)+seconds(t, env["AUTHSIDECAR_SHUTDOWN_DELAY"]) >= float64(grace) {
				t.Errorf("SHUTDOWN_TIMEOUT %q + SHUTDOWN_DELAY %q must be set below terminationGracePeriodSeconds %d", d, env["AUTHSIDECAR_SHUTDOWN_DELAY"], grace)
			}
			if legacy && env["AUTHSIDECAR_SHUTDOWN_DELAY"] == "" {
				t.Errorf("plain-container sidecar without SHUTDOWN_DELAY: the app's last calls would be refused")
			}
		})
	}
}

func checkGOMEMLIMIT(t *testing.T, c *corev1.Container) {
	t.Helper()
	for _, e := range c.Env {
		if e.Name != "GOMEMLIMIT" {
			continue
		}
		ref := e.ValueFrom
		if ref == nil || ref.ResourceFieldRef == nil || ref.ResourceFieldRef.Resource != "limits.memory" ||
			ref.ResourceFieldRef.ContainerName != c.Name {
			t.Errorf("GOMEMLIMIT is %+v, want the downward API's limits.memory of %s", e, c.Name)
		}
		return
	}
	t.Errorf("no GOMEMLIMIT")
}

func checkSecurity(t *testing.T, pod *corev1.PodSecurityContext, sc *corev1.SecurityContext) {
	t.Helper()
	if sc == nil {
		t.Fatal("no securityContext")
	}
	isTrue := func(b *bool) bool { return b != nil && *b }
	if !isTrue(sc.RunAsNonRoot) {
		t.Errorf("runAsNonRoot is not true")
	}
	if sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("runAsUser %v, want the image's numeric non-root user", sc.RunAsUser)
	}
	if !isTrue(sc.ReadOnlyRootFilesystem) {
		t.Errorf("readOnlyRootFilesystem is not true")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("allowPrivilegeEscalation is not false")
	}
	if sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0 {
		t.Errorf("capabilities %+v, want drop [ALL] and nothing added", sc.Capabilities)
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && pod != nil {
		seccomp = pod.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("seccompProfile %+v, want RuntimeDefault", seccomp)
	}
}

// identityFiles are the settings that may read the pod's own identity, a
// projected service-account token, in place of a Secret's file.
var identityFiles = []string{"CLIENT_ASSERTION_FILE", "ASSERTION_FILE", "SUBJECT_TOKEN_FILE", "ACTOR_TOKEN_FILE", "TOKEN_FILE"}

// Credentials reach the sidecar as files from a Secret, never as env
// values; the pod's own identity, from a projected service-account token.
// A client id is given literally only by a client without a secret, whose
// identity is its token: it is then public.
func TestCredentialsAreFilesFromSecrets(t *testing.T) {
	secretVars := []string{"CLIENT_ID", "CLIENT_SECRET", "SHARED_CACHE_PASSWORD", "API_KEY", "BASIC_USER", "BASIC_PASSWORD"}
	for _, dir := range appDirs(t) {
		t.Run(dir, func(t *testing.T) {
			a := appOf(t, dir)
			spec := &a.deployment.Spec.Template.Spec
			c, _ := sidecar(t, spec)
			for _, e := range c.Env {
				if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
					t.Errorf("env %s comes from a Secret as a value: mount it as a file", e.Name)
				}
			}
			for _, from := range c.EnvFrom {
				if from.SecretRef != nil {
					t.Errorf("envFrom Secret %s: mount it as files", from.SecretRef.Name)
				}
			}
			env := a.env(t, c)
			for name := range env {
				v := strings.TrimPrefix(unrouted(name), "AUTHSIDECAR_")
				if v == "CLIENT_ID" && env["AUTHSIDECAR_OAUTH2_AUTH_STYLE"] == "client-assertion-file" {
					continue
				}
				if slices.Contains(secretVars, v) {
					t.Errorf("%s is given literally: use %s_FILE", name, name)
				}
			}
			files := 0
			for name, path := range env {
				if !strings.HasSuffix(name, "_FILE") {
					continue
				}
				files++
				identity := slices.Contains(identityFiles, strings.TrimPrefix(unrouted(name), "AUTHSIDECAR_")) && underProjectedToken(spec, c, path)
				if !identity && !underSecretMount(spec, c, path) {
					t.Errorf("%s=%s is not under a read-only mount of a Secret volume", name, path)
				}
			}
			if dir != "base" && files == 0 {
				t.Errorf("no credential file configured")
			}
		})
	}
}

func underSecretMount(spec *corev1.PodSpec, c *corev1.Container, path string) bool {
	return secretAt(spec, c, path) != ""
}

// underProjectedToken reports whether path is a service-account token that
// a projected volume mounted read-only by c holds.
func underProjectedToken(spec *corev1.PodSpec, c *corev1.Container, path string) bool {
	for _, m := range c.VolumeMounts {
		dir := strings.TrimSuffix(m.MountPath, "/") + "/"
		if !m.ReadOnly || !strings.HasPrefix(path, dir) {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name != m.Name || v.Projected == nil {
				continue
			}
			for _, s := range v.Projected.Sources {
				if s.ServiceAccountToken != nil && s.ServiceAccountToken.Path == strings.TrimPrefix(path, dir) {
					return true
				}
			}
		}
	}
	return false
}

// secretAt names the Secret whose volume c mounts read-only above path, or
// is "".
func secretAt(spec *corev1.PodSpec, c *corev1.Container, path string) string {
	name, _ := secretFile(spec, c, path)
	return name
}

// secretFile names the Secret whose volume c mounts read-only above path,
// and the path below the mount: the Secret's key, for a volume that maps
// none. Both are "" if no such mount holds path.
func secretFile(spec *corev1.PodSpec, c *corev1.Container, path string) (secret, key string) {
	for _, m := range c.VolumeMounts {
		dir := strings.TrimSuffix(m.MountPath, "/") + "/"
		if !m.ReadOnly || !strings.HasPrefix(path, dir) {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				return v.Secret.SecretName, strings.TrimPrefix(path, dir)
			}
		}
	}
	return "", ""
}

// The fleet example is the Alternative example with the shared cache on:
// the same settings plus the cache's three, whose files come from the
// authsidecar-shared-cache Secret that the component's comment creates.
func TestSharedCacheExample(t *testing.T) {
	alone, fleet := appOf(t, "examples/alternative"), appOf(t, "examples/alternative-fleet")
	c, _ := sidecar(t, &alone.deployment.Spec.Template.Spec)
	want := alone.env(t, c)
	spec := &fleet.deployment.Spec.Template.Spec
	c, _ = sidecar(t, spec)
	got := fleet.env(t, c)
	for _, name := range []string{"AUTHSIDECAR_SHARED_CACHE", "AUTHSIDECAR_SHARED_CACHE_KEY_FILE", "AUTHSIDECAR_SHARED_CACHE_PASSWORD_FILE"} {
		if _, ok := want[name]; ok {
			t.Errorf("examples/alternative sets %s: the component should", name)
		}
		if got[name] == "" {
			t.Errorf("examples/alternative-fleet does not set %s", name)
			continue
		}
		want[name] = got[name]
		if s := secretAt(spec, c, got[name]); strings.HasSuffix(name, "_FILE") && s != "authsidecar-shared-cache" {
			t.Errorf("%s=%s comes from Secret %q, want authsidecar-shared-cache", name, got[name], s)
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("examples/alternative-fleet settings:\n%v\nwant examples/alternative's and the shared cache's:\n%v", got, want)
	}
}

// Both ways of scraping find the admin port, and the PodMonitor and the
// NetworkPolicy select the app's pods.
func TestScrapingAndNetworkPolicy(t *testing.T) {
	for _, dir := range appDirs(t) {
		t.Run(dir, func(t *testing.T) {
			a := appOf(t, dir)
			tmpl := a.deployment.Spec.Template
			c, _ := sidecar(t, &tmpl.Spec)
			env := a.env(t, c)
			admin := portOf(t, env["AUTHSIDECAR_ADMIN_ADDR"])
			podLabels := labels.Set(tmpl.Labels)

			ann := tmpl.Annotations
			if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/path"] != "/metrics" || ann["prometheus.io/port"] != strconv.Itoa(admin) {
				t.Errorf("prometheus.io annotations %v, want scrape true, path /metrics, port %d", ann, admin)
			}

			if pm := a.podMonitor; pm == nil {
				t.Errorf("no PodMonitor")
			} else {
				if sel, err := labels.Set(pm.Spec.Selector.MatchLabels).AsValidatedSelector(); err != nil || sel.Empty() || !sel.Matches(podLabels) {
					t.Errorf("PodMonitor selector %v does not select the pods %v (or selects every pod)", pm.Spec.Selector.MatchLabels, podLabels)
				}
				if len(pm.Spec.PodMetricsEndpoints) != 1 {
					t.Fatalf("PodMonitor endpoints %+v, want one", pm.Spec.PodMetricsEndpoints)
				}
				ep := pm.Spec.PodMetricsEndpoints[0]
				if ep.Port == nil || containerPort(t, c, *ep.Port) != admin || ep.Path != "/metrics" {
					t.Errorf("PodMonitor endpoint port %v path %q, want the admin port %d and /metrics", ep.Port, ep.Path, admin)
				}
			}

			np := a.policy
			if np == nil {
				t.Fatal("no NetworkPolicy")
			}
			if sel := labels.Set(np.Spec.PodSelector.MatchLabels).AsSelector(); sel.Empty() || !sel.Matches(podLabels) {
				t.Errorf("NetworkPolicy podSelector %v does not select the pods %v", np.Spec.PodSelector.MatchLabels, podLabels)
			}
			if !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
				t.Errorf("NetworkPolicy policyTypes %v lacks Egress: egress would be open", np.Spec.PolicyTypes)
			}
			// With the shared cache, one more rule: to Redis, on the URL's port.
			redisPort := 0
			if u := env["AUTHSIDECAR_SHARED_CACHE"]; u != "" {
				redisPort = redisPortOf(t, u)
			}
			var dns, https, redis int
			for _, rule := range np.Spec.Egress {
				for _, p := range rule.Ports {
					switch {
					case p.Port != nil && p.Port.IntValue() == 53:
						dns++
						for _, peer := range rule.To {
							if peer.PodSelector != nil && !labels.Set(peer.PodSelector.MatchLabels).AsSelector().Matches(labels.Set{"k8s-app": "kube-dns"}) {
								t.Errorf("DNS peer %v does not select kube-dns", peer.PodSelector.MatchLabels)
							}
						}
					case p.Port != nil && p.Port.IntValue() == 443:
						https++
						if len(rule.To) == 0 {
							t.Errorf("egress on 443 to anywhere: name the token endpoint and the upstream")
						}
					case redisPort != 0 && p.Port != nil && p.Port.IntValue() == redisPort:
						redis++
						if len(rule.To) == 0 {
							t.Errorf("egress on %d to anywhere: name Redis", redisPort)
						}
					default:
						t.Errorf("egress on unexpected port %v", p.Port)
					}
				}
				if len(rule.Ports) == 0 {
					t.Errorf("egress rule without ports: %+v", rule)
				}
			}
			if dns != 2 || https != 2 {
				t.Errorf("egress allows DNS on %d and HTTPS on %d rules, want DNS (UDP, TCP) and two HTTPS peers (token endpoint, upstream)", dns, https)
			}
			if redisPort != 0 && redis != 1 {
				t.Errorf("egress allows the shared cache's port %d on %d rules, want one (to Redis)", redisPort, redis)
			}
			metricsFromAnywhere := false
			for _, rule := range np.Spec.Ingress {
				for _, p := range rule.Ports {
					if p.Port != nil && p.Port.IntValue() == admin && len(rule.From) == 0 {
						metricsFromAnywhere = true
					}
				}
			}
			if metricsFromAnywhere {
				t.Errorf("the admin port %d is open to every peer", admin)
			}
		})
	}
}

// redisPortOf is the port of a shared cache URL, 6379 when it names none.
func redisPortOf(t *testing.T, raw string) int {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("AUTHSIDECAR_SHARED_CACHE %q: %v", raw, err)
	}
	if u.Port() == "" {
		return 6379
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatalf("AUTHSIDECAR_SHARED_CACHE %q: port: %v", raw, err)
	}
	return p
}

// portOf is the port of a listen address such as ":9090".
func portOf(t *testing.T, addr string) int {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	p, err := strconv.Atoi(addr[i+1:])
	if i < 0 || err != nil {
		t.Fatalf("listen address %q has no port", addr)
	}
	return p
}

// containerPort resolves a probe's or monitor's port, a name or a number.
func containerPort(t *testing.T, c *corev1.Container, port string) int {
	t.Helper()
	if n, err := strconv.Atoi(port); err == nil {
		return n
	}
	for _, p := range c.Ports {
		if p.Name == port {
			return int(p.ContainerPort)
		}
	}
	t.Errorf("container %s has no port named %q", c.Name, port)
	return 0
}

func seconds(t *testing.T, d string) float64 {
	t.Helper()
	if d == "" {
		return 0
	}
	v, err := time.ParseDuration(d)
	if err != nil {
		t.Errorf("duration %q: %v", d, err)
	}
	return v.Seconds()
}
