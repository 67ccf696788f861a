// Command image builds typoguard's container image without a registry or
// a container engine: one layer holding the static binary, the default
// policy and a passwd entry for uid 65532, on an empty base, with the
// Dockerfile's user, entrypoint and ports, written as a tarball that
// `docker load` and `podman load` read. `make image` runs it.
//
//	go run ./deploy/image -binary FILE -policy FILE -o FILE [-tag NAME]
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// The image's layout, as the Dockerfile makes it.
const (
	binaryPath = "usr/local/bin/typoguard"
	policyPath = "etc/typoguard/typoguard.yaml"
	user       = "65532:65532"
)

// Options say what goes into the image.
type Options struct {
	Binary []byte    // the static typoguard binary, for linux
	Policy []byte    // the default policy
	Arch   string    // GOARCH of the binary
	Time   time.Time // of every file and of the image: fixed, so a build is reproducible
}

// Build assembles the image.
func Build(o Options) (v1.Image, error) {
	layerTar, err := layerFiles(o)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{
		Layer:   layer,
		History: v1.History{Created: v1.Time{Time: o.Time}, CreatedBy: "typoguard deploy/image", Comment: "binary, default policy, passwd"},
	})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Created = "linux", o.Arch, v1.Time{Time: o.Time}
	cf.Config = v1.Config{
		User:         user,
		Entrypoint:   []string{"/" + binaryPath},
		Cmd:          []string{"serve", "-config", "/" + policyPath},
		ExposedPorts: map[string]struct{}{"53/udp": {}, "53/tcp": {}},
		Env:          []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
		WorkingDir:   "/",
	}
	return mutate.ConfigFile(img, cf)
}

// layerFiles is the layer: its directories, passwd and group with the
// nonroot user (distroless's uid and gid, 65532), the policy and the
// binary, all owned by root but the user's home.
func layerFiles(o Options) ([]byte, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	type entry struct {
		name     string
		mode     int64
		uid      int
		data     []byte
		typeflag byte
	}
	passwd := "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
	group := "root:x:0:\nnonroot:x:65532:\n"
	entries := []entry{
		{name: "etc/", mode: 0o755, typeflag: tar.TypeDir},
		{name: "etc/passwd", mode: 0o644, data: []byte(passwd)},
		{name: "etc/group", mode: 0o644, data: []byte(group)},
		{name: "etc/typoguard/", mode: 0o755, typeflag: tar.TypeDir},
		{name: policyPath, mode: 0o644, data: o.Policy},
		{name: "home/", mode: 0o755, typeflag: tar.TypeDir},
		{name: "home/nonroot/", mode: 0o700, uid: 65532, typeflag: tar.TypeDir},
		{name: "tmp/", mode: 0o1777, typeflag: tar.TypeDir},
		{name: "usr/", mode: 0o755, typeflag: tar.TypeDir},
		{name: "usr/local/", mode: 0o755, typeflag: tar.TypeDir},
		{name: "usr/local/bin/", mode: 0o755, typeflag: tar.TypeDir},
		{name: binaryPath, mode: 0o755, data: o.Binary},
	}
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, Uid: e.uid, Gid: e.uid, ModTime: o.Time, Typeflag: e.typeflag, Format: tar.FormatPAX}
		if e.typeflag == 0 {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func main() {
	binary := flag.String("binary", "", "the static typoguard binary (CGO_ENABLED=0) to put in the image")
	policy := flag.String("policy", "deploy/typoguard.yaml", "the default policy to put in the image")
	out := flag.String("o", "typoguard-image.tar", "the image tarball to write")
	tag := flag.String("tag", "typoguard:latest", "the image's name and tag in the tarball")
	arch := flag.String("arch", "amd64", "the binary's GOARCH")
	flag.Parse()
	if *binary == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	bin, err := os.ReadFile(*binary)
	if err != nil {
		log.Fatal(err)
	}
	pol, err := os.ReadFile(*policy)
	if err != nil {
		log.Fatal(err)
	}
	// SOURCE_DATE_EPOCH (reproducible-builds.org) sets the files' and the
	// image's time; without it, the Unix epoch.
	when := time.Unix(0, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			log.Fatalf("SOURCE_DATE_EPOCH: %v", err)
		}
		when = time.Unix(sec, 0).UTC()
	}
	img, err := Build(Options{Binary: bin, Policy: pol, Arch: *arch, Time: when})
	if err != nil {
		log.Fatal(err)
	}
	ref, err := name.NewTag(*tag)
	if err != nil {
		log.Fatal(err)
	}
	if err := tarball.WriteToFile(*out, ref, img); err != nil {
		log.Fatal(err)
	}
	digest, _ := img.Digest()
	fmt.Printf("%s: %s, %s\n", *out, ref, digest)
}
