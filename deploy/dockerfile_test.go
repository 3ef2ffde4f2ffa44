package deploy

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// The Dockerfile review, as a test: what the issue asks of the image.
func TestDockerfile(t *testing.T) {
	raw, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var stages [][]string // instructions per stage, comments dropped, continuations joined
	text := strings.ReplaceAll(string(raw), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "FROM ") {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			t.Fatalf("instruction before FROM: %s", line)
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], line)
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a multi-stage build", len(stages))
	}
	build := strings.Join(stages[len(stages)-2], "\n")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`CGO_ENABLED=0 go build`),
		regexp.MustCompile(`-trimpath`),
		regexp.MustCompile(`-ldflags "-s -w -X main\.version=\$\{?VERSION\}?"`),
		regexp.MustCompile(`(?m)^ARG VERSION`),
	} {
		if !want.MatchString(build) {
			t.Errorf("build stage lacks %s", want)
		}
	}
	checkCopiesEveryPackage(t, build)
	final := stages[len(stages)-1]
	want := []string{
		"FROM gcr.io/distroless/static-debian12:nonroot",
		"COPY --from=build /authsidecar /authsidecar",
		"USER 65532:65532",
		"EXPOSE 8080 9090",
		`ENTRYPOINT ["/authsidecar"]`,
	}
	if strings.Join(final, "\n") != strings.Join(want, "\n") {
		t.Errorf("final stage:\n%s\nwant exactly:\n%s", strings.Join(final, "\n"), strings.Join(want, "\n"))
	}
}

// The build stage copies only some directories: every package of this module
// that the binary imports must be among them, or the image does not build
// (no Docker engine runs here to find out otherwise).
func checkCopiesEveryPackage(t *testing.T, build string) {
	t.Helper()
	var copied []string
	for _, m := range regexp.MustCompile(`(?m)^COPY (\S+) \./\S+$`).FindAllStringSubmatch(build, -1) {
		copied = append(copied, strings.TrimSuffix(m[1], "/"))
	}
	list := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./cmd/authsidecar")
	list.Dir = ".."
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root = strings.TrimSuffix(root, "/deploy") + "/"
	for _, dir := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(dir, root)
		ok := false
		for _, c := range copied {
			ok = ok || rel == c || strings.HasPrefix(rel, c+"/")
		}
		if !ok {
			t.Errorf("the binary needs %s, which the build stage does not COPY (it copies %v)", rel, copied)
		}
	}
}
