package main

import (
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/typoguard/typoguard/policy"
)

// TestReadmePolicySnippetsParse keeps every YAML snippet in the README, and
// the container's policy, valid.
func TestReadmePolicySnippetsParse(t *testing.T) {
	readme, err := os.ReadFile(repoPath("README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatal("no yaml snippets in README.md")
	}
	// A snippet's files stand in as an empty list, and a key file as a
	// secret.
	open := func(name string) (io.ReadCloser, int64, error) {
		if strings.HasSuffix(name, ".key") {
			return io.NopCloser(strings.NewReader("c2VjcmV0LWZvci10aGUtcmVhZG1lLXNuaXBwZXQ=\n")), 41, nil
		}
		return io.NopCloser(strings.NewReader("")), 0, nil
	}
	for i, b := range blocks {
		if _, err := policy.Parse("README.md snippet", b[1], policy.Options{OpenList: open}); err != nil {
			t.Errorf("README yaml snippet %d:\n%v", i+1, err)
		}
	}
	for _, f := range []string{"deploy/typoguard.yaml"} {
		src, err := os.ReadFile(repoPath(f))
		if err != nil {
			t.Fatal(err)
		}
		p, err := policy.Parse(f, src, policy.Options{})
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, r := range p.RunTests() {
			if !r.Pass {
				t.Errorf("%s", r)
			}
		}
	}
}

// TestReadmeTestCommandIsCI keeps .ci/run calling the README's test command.
func TestReadmeTestCommandIsCI(t *testing.T) {
	readme, _ := os.ReadFile(repoPath("README.md"))
	ci, err := os.ReadFile(repoPath(".ci/run"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?m)^(make test)\\s+# run every test").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README does not give `make test` as the test command")
	}
	if !regexp.MustCompile("(?m)^" + string(m[1]) + "$").Match(ci) {
		t.Errorf(".ci/run does not call %q on a line of its own", m[1])
	}
}
