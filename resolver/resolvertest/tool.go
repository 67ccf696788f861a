package resolvertest

import (
	"os"
	"os/exec"
	"testing"
)

// NeedTool finds the program a test runs. Without it the test fails under
// CI=true, where .ci/run installs it (from the Debian package pkg), and is
// skipped elsewhere.
func NeedTool(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		// Servers live in /usr/sbin, which sudo's and some CI shells'
		// PATH lacks.
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if st, serr := os.Stat(dir + "/" + name); serr == nil && !st.IsDir() {
				return dir + "/" + name
			}
		}
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI=true: %v (apt-get install %s)", name, err, pkg)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}
