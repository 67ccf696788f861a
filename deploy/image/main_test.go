package main

import (
	"archive/tar"
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/typoguard/typoguard/resolver/resolvertest"
)

// TestImage builds the image tarball as `make image` does, reads its
// manifest and config back, takes the binary and the policy out of the
// image's own layer, runs that binary on loopback as the image's user
// would run it, and asks it with dig.
func TestImage(t *testing.T) {
	dig := resolvertest.NeedTool(t, "dig", "bind9-dnsutils")
	dir := t.TempDir()
	bin := filepath.Join(dir, "typoguard")
	build := exec.Command("go", "build", "-trimpath", "-o", bin, "./cmd/typoguard")
	build.Dir = filepath.Join("..", "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out := filepath.Join(dir, "image.tar")
	run := exec.Command("go", "run", "./deploy/image", "-binary", bin, "-policy", "deploy/typoguard.yaml", "-o", out, "-tag", "typoguard:test", "-arch", runtime.GOARCH)
	run.Dir = filepath.Join("..", "..")
	if o, err := run.CombinedOutput(); err != nil {
		t.Fatalf("deploy/image: %v\n%s", err, o)
	}

	tag, _ := name.NewTag("typoguard:test")
	img, err := tarball.ImageFromPath(out, &tag)
	if err != nil {
		t.Fatal(err)
	}
	m, err := img.Manifest()
	if err != nil || len(m.Layers) != 1 {
		t.Fatalf("manifest %+v, %v; want one layer", m, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	c := cf.Config
	if c.User != "65532:65532" || !slices.Equal(c.Entrypoint, []string{"/usr/local/bin/typoguard"}) ||
		!slices.Equal(c.Cmd, []string{"serve", "-config", "/etc/typoguard/typoguard.yaml"}) || cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
		t.Errorf("config: user %q, entrypoint %q, cmd %q, %s/%s", c.User, c.Entrypoint, c.Cmd, cf.OS, cf.Architecture)
	}
	if _, udp := c.ExposedPorts["53/udp"]; !udp || len(c.ExposedPorts) != 2 {
		t.Errorf("exposed ports %v, want 53/udp and 53/tcp", c.ExposedPorts)
	} else if _, tcp := c.ExposedPorts["53/tcp"]; !tcp {
		t.Errorf("exposed ports %v, want 53/udp and 53/tcp", c.ExposedPorts)
	}
	// The same inputs make the same image, byte for byte.
	again := filepath.Join(dir, "again.tar")
	run = exec.Command("go", "run", "./deploy/image", "-binary", bin, "-o", again, "-tag", "typoguard:test", "-arch", runtime.GOARCH)
	run.Dir = filepath.Join("..", "..")
	if o, err := run.CombinedOutput(); err != nil {
		t.Fatalf("deploy/image: %v\n%s", err, o)
	}
	if a, _ := img.Digest(); true {
		img2, err := tarball.ImageFromPath(again, &tag)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := img2.Digest(); a != b {
			t.Errorf("two builds of the same files: digests %s and %s", a, b)
		}
	}

	// Out of the layer: the binary, the policy and the user.
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	files := map[string]*tar.Header{}
	extracted := filepath.Join(dir, "extracted")
	tr := tar.NewReader(rc)
	var passwd string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		files[h.Name] = h
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		switch h.Name {
		case binaryPath, policyPath:
			p := filepath.Join(extracted, h.Name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, os.FileMode(h.Mode)); err != nil {
				t.Fatal(err)
			}
		case "etc/passwd":
			passwd = string(data)
		}
	}
	if h := files[binaryPath]; h == nil || h.Mode&0o111 == 0 || h.Uid != 0 {
		t.Fatalf("the layer's %s: %+v", binaryPath, h)
	}
	if !strings.Contains(passwd, ":65532:65532:") {
		t.Errorf("passwd has no user 65532:\n%s", passwd)
	}

	// The image's binary, on the image's policy, on loopback.
	cmd := exec.Command(filepath.Join(extracted, binaryPath), "serve", "-config", filepath.Join(extracted, policyPath), "-listen", "127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var l map[string]any
			if json.Unmarshal(sc.Bytes(), &l) == nil && l["msg"] == "listening" && l["net"] == "udp" {
				select {
				case addr <- l["addr"].(string):
				default:
				}
			}
		}
	}()
	var at string
	select {
	case at = <-addr:
	case <-time.After(10 * time.Second):
		t.Fatal("the image's typoguard did not listen")
	}
	host, port, _ := strings.Cut(at, ":")
	// Blocked names only: they are answered from the policy, and the
	// image's upstreams are this machine's resolvers, which a test never asks.
	for _, q := range [][2]string{{"army.ml", "MX"}, {"mail.army.ml", "A"}} {
		o, err := exec.Command(dig, "+time=2", "+tries=1", "@"+host, "-p", port, q[0], q[1]).CombinedOutput()
		if err != nil || !strings.Contains(string(o), "status: NXDOMAIN") || !strings.Contains(string(o), "EDE: 15 (Blocked)") {
			t.Errorf("dig %s %s against the image's typoguard: %v\n%s", q[0], q[1], err, o)
		}
	}
}
