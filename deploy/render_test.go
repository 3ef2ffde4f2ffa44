package deploy

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// object is one rendered Kubernetes object.
type object struct {
	apiVersion, kind, name string
	yaml                   []byte
}

// kustomizations lists the directories under deploy/ that render on their
// own (Kustomizations, not Components), relative to deploy/.
func kustomizations(t *testing.T) []string {
	t.Helper()
	var dirs []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "kustomization.yaml" {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var k struct{ Kind string }
		if err := yaml.Unmarshal(raw, &k); err != nil {
			t.Errorf("%s: %v", path, err)
			return nil
		}
		if k.Kind != "Component" {
			dirs = append(dirs, filepath.Dir(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

var (
	renderMu    sync.Mutex
	renderCache = map[string][]object{}
)

// render builds dir with Kustomize's library (the one kubectl embeds),
// offline, and returns its objects.
func render(t *testing.T, dir string) []object {
	t.Helper()
	renderMu.Lock()
	defer renderMu.Unlock()
	if objs, ok := renderCache[dir]; ok {
		return objs
	}
	resMap, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	var objs []object
	for _, r := range resMap.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			t.Fatalf("%s: %s: %v", dir, r.CurId(), err)
		}
		objs = append(objs, object{apiVersion: r.GetApiVersion(), kind: r.GetKind(), name: r.GetName(), yaml: y})
	}
	renderCache[dir] = objs
	return objs
}

// The list: a base, an example per provider, the pre-1.29 overlay
// and the monitoring assets; an example with the shared cache, and one
// sidecar for several providers (routes).
func TestEveryKustomizationRenders(t *testing.T) {
	dirs := kustomizations(t)
	for _, want := range []string{
		"base", "monitoring", "overlays/pre-1.29",
		"examples/tezpay", "examples/alternative", "examples/juspay", "examples/axepta",
		"examples/alternative-fleet", "examples/multi-provider", "examples/secretless",
	} {
		if !slices.Contains(dirs, want) {
			t.Errorf("no kustomization in deploy/%s (have %v)", want, dirs)
		}
	}
	for _, dir := range dirs {
		t.Run(dir, func(t *testing.T) {
			if objs := render(t, dir); len(objs) == 0 {
				t.Errorf("%s renders no object", dir)
			}
		})
	}
}

// kubectl kustomize, when kubectl is installed, renders the same objects.
func TestKubectlKustomizeRendersOffline(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl is not installed; the library test above renders with the same Kustomize")
	}
	for _, dir := range kustomizations(t) {
		t.Run(dir, func(t *testing.T) {
			cmd := exec.Command(kubectl, "kustomize", dir)
			cmd.Env = append(os.Environ(), "KUBECONFIG=/nonexistent", "HTTPS_PROXY=http://127.0.0.1:1")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
			}
			var kinds []string
			for _, doc := range bytes.Split(out, []byte("\n---\n")) {
				var m struct{ Kind string }
				if err := yaml.Unmarshal(doc, &m); err != nil {
					t.Fatalf("kubectl kustomize %s: %v", dir, err)
				}
				kinds = append(kinds, m.Kind)
			}
			var want []string
			for _, o := range render(t, dir) {
				want = append(want, o.kind)
			}
			slices.Sort(kinds)
			slices.Sort(want)
			if !slices.Equal(kinds, want) {
				t.Errorf("kubectl kustomize %s renders %v, the library %v", dir, kinds, want)
			}
		})
	}
}
