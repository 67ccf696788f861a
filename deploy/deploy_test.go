// Package deploy holds the files that run typoguard outside a developer's
// terminal: the container image's default policy, a systemd unit and
// Kubernetes manifests. Its tests parse every one of them and check that they
// fit together and keep the properties the resolver's operation relies on.
package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/typoguard/typoguard/policy"
)

const (
	imagePolicyFile = "typoguard.yaml" // copied into the image by the Dockerfile
	unitFile        = "systemd/typoguard.service"
	kubernetesDir   = "kubernetes"
	kustomization   = "kustomization.yaml"
	binaryPath      = "/usr/local/bin/typoguard"

	// readyzTimeout is how long /readyz may wait for an upstream's answer
	// before it reports; a readiness probe must wait longer.
	readyzTimeout = 2
)

// checkPolicy compiles a policy shipped with the deployment files, runs its
// tests: and checks that its listen addresses can be reached from other
// hosts (policy.Parse itself refuses addresses that cannot all be bound). It stops the test if the policy does not compile.
func checkPolicy(t *testing.T, name string, src []byte) *policy.Policy {
	t.Helper()
	p, err := policy.Parse(name, src, policy.Options{})
	if err != nil {
		t.Fatalf("policy %s does not load:\n%v", name, err)
	}
	for _, r := range p.RunTests() {
		if !r.Pass {
			t.Errorf("policy %s: test fails: %s", name, r)
		}
	}
	if err := checkListen(p.Listen); err != nil {
		t.Errorf("policy %s: %v", name, err)
	}
	if p.Log.Format != "json" {
		t.Errorf("policy %s: log.format is %q; the log pipeline takes json", name, p.Log.Format)
	}
	return p
}

// checkListen reports listen addresses that only the machine itself could
// reach. (Addresses that cannot all be bound are policy.Parse's errors.)
func checkListen(addrs []string) error {
	var errs []error
	if len(addrs) == 0 {
		return errors.New("listen is empty")
	}
	for _, a := range addrs {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			errs = append(errs, fmt.Errorf("listen %q: %w", a, err))
			continue
		}
		if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
			errs = append(errs, fmt.Errorf("listen %s: a loopback address is unreachable from other hosts", a))
		}
	}
	return errors.Join(errs...)
}

func TestCheckListen(t *testing.T) {
	tests := []struct {
		name  string
		addrs []string
		ok    bool
	}{
		{"wildcard", []string{"0.0.0.0:53"}, true},
		{"IPv6 wildcard", []string{"[::]:53"}, true},
		{"addresses of the host", []string{"10.0.0.53:53", "[fd00::53]:53"}, true},
		{"wildcards on different ports", []string{"0.0.0.0:53", "[::]:5300"}, true},
		{"both wildcards", []string{"0.0.0.0:53", "[::]:53"}, true},
		{"loopback", []string{"127.0.0.1:53"}, false},
		{"nothing", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkListen(tt.addrs)
			if (err == nil) != tt.ok {
				t.Errorf("checkListen(%q) = %v, want ok %v", tt.addrs, err, tt.ok)
			}
		})
	}
}

// TestImagePolicy checks the policy the container image serves when no
// other is mounted.
func TestImagePolicy(t *testing.T) {
	src, err := os.ReadFile(imagePolicyFile)
	if err != nil {
		t.Fatal(err)
	}
	p := checkPolicy(t, imagePolicyFile, src)
	for _, a := range p.Listen {
		// The Dockerfile EXPOSEs 53/udp and 53/tcp.
		if _, port, _ := net.SplitHostPort(a); port != "53" {
			t.Errorf("%s: listen %s: the image exposes port 53", imagePolicyFile, a)
		}
	}
}

// flagValue returns the value of the Go-style flag name in args (-name v,
// -name=v, --name v or --name=v), or "" when it is absent.
func flagValue(args []string, name string) string {
	for i, a := range args {
		a = strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// A unit is a parsed systemd unit file: section, then key, then every value
// assigned to the key in file order (a key such as SystemCallFilter= may be
// assigned several times).
type unit map[string]map[string][]string

var unitKey = regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)

// parseUnit reads a systemd unit file: "[Section]" headers for the sections
// a service unit has, "Key=Value" lines, "#" and ";" comments, blank lines,
// and a trailing backslash that continues a line. Any other line is an
// error, so a mangled line fails the test instead of being skipped as it
// would be by systemd, with only a log line.
func parseUnit(src string) (unit, error) {
	u := unit{}
	var errs []error
	section := ""
	lines := strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		n := i + 1
		line := strings.TrimSpace(lines[i])
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		for strings.HasSuffix(line, `\`) && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, `\`) + " " + strings.TrimSpace(lines[i])
		}
		if line[0] == '[' {
			name, ok := strings.CutSuffix(line[1:], "]")
			if !ok || !slices.Contains([]string{"Unit", "Service", "Install"}, name) {
				errs = append(errs, fmt.Errorf("line %d: %q is not [Unit], [Service] or [Install]", n, line))
				continue
			}
			section = name
			if u[section] == nil {
				u[section] = map[string][]string{}
			}
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		switch {
		case !ok || !unitKey.MatchString(key):
			errs = append(errs, fmt.Errorf("line %d: %q is not Key=Value", n, line))
		case section == "":
			errs = append(errs, fmt.Errorf("line %d: %s= is outside any section", n, key))
		default:
			u[section][key] = append(u[section][key], strings.TrimSpace(value))
		}
	}
	return u, errors.Join(errs...)
}

// last returns the value a single-valued setting ends up with.
func (u unit) last(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// list returns the words of a list setting as systemd builds it: each
// assignment adds its words, and an empty one clears what came before.
func (u unit) list(section, key string) []string {
	var words []string
	for _, v := range u[section][key] {
		if v == "" {
			words = nil
		}
		words = append(words, strings.Fields(v)...)
	}
	return words
}

// boolean reports whether a setting is true in systemd's spelling.
func (u unit) boolean(section, key string) bool {
	switch strings.ToLower(u.last(section, key)) {
	case "1", "yes", "y", "true", "t", "on":
		return true
	}
	return false
}

func TestParseUnit(t *testing.T) {
	good := "# comment\n; comment\n\n[Unit]\nAfter=a.target \\\n  b.target\n[Service]\nSystemCallFilter=@system-service\nSystemCallFilter=~@privileged\nEnvironment = A=1\n[Unit]\nWants=a.target\n"
	u, err := parseUnit(good)
	if err != nil {
		t.Fatalf("parseUnit(good): %v", err)
	}
	if got, want := u.list("Unit", "After"), []string{"a.target", "b.target"}; !slices.Equal(got, want) {
		t.Errorf("After = %q, want %q", got, want)
	}
	if got := u["Service"]["SystemCallFilter"]; len(got) != 2 {
		t.Errorf("SystemCallFilter = %q, want both assignments", got)
	}
	if got := u.last("Service", "Environment"); got != "A=1" {
		t.Errorf("Environment = %q, want A=1", got)
	}
	if got := u.last("Unit", "Wants"); got != "a.target" {
		t.Errorf("Wants from a repeated [Unit] = %q", got)
	}

	for _, bad := range []string{
		"[Service]\nNoNewPrivileges yes\n",
		"[Service]\nnoNewPrivileges=yes\n",
		"[Service]\n=yes\n",
		"[Service\nType=exec\n",
		"[Servce]\nType=exec\n",
		"Type=exec\n[Service]\n",
		"[Service]\n  -config /etc/typoguard/typoguard.yaml\n",
	} {
		if _, err := parseUnit(bad); err == nil {
			t.Errorf("parseUnit(%q) = nil error", bad)
		}
	}
}

// TestSystemdUnit checks the unit runs typoguard as the operations contract
// says, unprivileged but for binding port 53.
func TestSystemdUnit(t *testing.T) {
	src, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	u, err := parseUnit(string(src))
	if err != nil {
		t.Errorf("%s:\n%v", unitFile, err)
	}

	execStart := u["Service"]["ExecStart"]
	if len(execStart) != 1 {
		t.Fatalf("%s: ExecStart= is set %d times, want once", unitFile, len(execStart))
	}
	// A "+" or "!" prefix would run the command with full privileges.
	args := strings.Fields(execStart[0])
	if len(args) < 2 || args[0] != binaryPath || args[1] != "serve" {
		t.Errorf("%s: ExecStart=%s, want %s serve ...", unitFile, execStart[0], binaryPath)
	} else if cfg := flagValue(args[2:], "config"); !path.IsAbs(cfg) {
		t.Errorf("%s: ExecStart=%s names no absolute -config file", unitFile, execStart[0])
	}

	reload := strings.Fields(u.last("Service", "ExecReload"))
	hup := false
	for i, a := range reload {
		switch {
		case a == "-HUP" || a == "-SIGHUP" || a == "-1":
			hup = true
		case a == "-s" && i+1 < len(reload):
			hup = hup || reload[i+1] == "HUP" || reload[i+1] == "SIGHUP"
		}
	}
	mainPID := slices.Contains(reload, "$MAINPID") || slices.Contains(reload, "${MAINPID}")
	if len(reload) == 0 || path.Base(reload[0]) != "kill" || !hup || !mainPID {
		t.Errorf("%s: ExecReload=%s, want kill -HUP $MAINPID (typoguard reloads its policy on SIGHUP)", unitFile, u.last("Service", "ExecReload"))
	}

	// typoguard sends no sd_notify readiness and takes no sockets from
	// systemd.
	if typ := u.last("Service", "Type"); typ != "" && typ != "simple" && typ != "exec" {
		t.Errorf("%s: Type=%s, want simple or exec", unitFile, typ)
	}
	if sockets, _ := filepath.Glob(filepath.Join(filepath.Dir(unitFile), "*.socket")); len(sockets) > 0 {
		t.Errorf("socket units %q: typoguard does not support socket activation", sockets)
	}

	for _, s := range []struct{ key, want string }{
		{"Restart", "on-failure"},
		{"ProtectSystem", "strict"},
	} {
		if got := u.last("Service", s.key); got != s.want {
			t.Errorf("%s: %s=%s, want %s", unitFile, s.key, got, s.want)
		}
	}
	for _, key := range []string{"NoNewPrivileges", "ProtectHome", "PrivateTmp"} {
		if !u.boolean("Service", key) {
			t.Errorf("%s: %s=%s, want yes", unitFile, key, u.last("Service", key))
		}
	}
	// Inside a user namespace a capability no longer lets the service bind
	// port 53 of the host's network namespace.
	if u.boolean("Service", "PrivateUsers") {
		t.Errorf("%s: PrivateUsers=yes keeps typoguard from binding port 53", unitFile)
	}
	for _, key := range []string{"AmbientCapabilities", "CapabilityBoundingSet"} {
		if got := u.list("Service", key); !slices.Equal(got, []string{"CAP_NET_BIND_SERVICE"}) {
			t.Errorf("%s: %s=%s, want exactly CAP_NET_BIND_SERVICE", unitFile, key, strings.Join(got, " "))
		}
	}
	if user := u.last("Service", "User"); !u.boolean("Service", "DynamicUser") && (user == "" || user == "root" || user == "0") {
		t.Errorf("%s: runs as root: set DynamicUser=yes or an unprivileged User=", unitFile)
	}

	for _, key := range []string{"After", "Wants"} {
		if !slices.Contains(u.list("Unit", key), "network-online.target") {
			t.Errorf("%s: %s= lacks network-online.target: listen addresses must exist before typoguard binds them", unitFile, key)
		}
	}
	if len(u.list("Install", "WantedBy")) == 0 {
		t.Errorf("%s: no WantedBy=: systemctl enable would not start it at boot", unitFile)
	}
}

// An object is one document of a Kubernetes manifest.
type object struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`

	file string
	doc  *yaml.Node
}

func (o object) String() string { return fmt.Sprintf("%s %s/%s", o.file, o.Kind, o.Metadata.Name) }

// apiVersions are the versions the manifests use, by kind. A kind not listed
// fails the test until its invariants are written here too.
var apiVersions = map[string]string{
	"ConfigMap":           "v1",
	"Service":             "v1",
	"Deployment":          "apps/v1",
	"PodDisruptionBudget": "policy/v1",
}

// loadManifests decodes every document of every manifest in dir, except the
// kustomization, and checks that each is a named object of a known kind.
func loadManifests(t *testing.T, dir string) (files []string, objects []object) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for _, e := range entries {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") || e.Name() == kustomization {
			continue
		}
		files = append(files, e.Name())
		file := filepath.Join(dir, e.Name())
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(src))
		for i := 1; ; i++ {
			var doc yaml.Node
			if err := dec.Decode(&doc); err == io.EOF {
				break
			} else if err != nil {
				t.Errorf("%s: document %d: %v", file, i, err)
				break
			}
			if empty(&doc) {
				continue // what a stray "---" leaves; kubectl skips it too
			}
			o := object{file: file, doc: &doc}
			if err := doc.Decode(&o); err != nil {
				t.Errorf("%s: document %d: %v", file, i, err)
				continue
			}
			if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
				t.Errorf("%s: document %d (line %d) lacks apiVersion, kind or metadata.name", file, i, doc.Line)
				continue
			}
			if want, ok := apiVersions[o.Kind]; !ok {
				t.Errorf("%s: kind %s is not checked by this test", o, o.Kind)
			} else if o.APIVersion != want {
				t.Errorf("%s: apiVersion %s, want %s", o, o.APIVersion, want)
			}
			id := o.Kind + "/" + o.Metadata.Name
			if prev, dup := seen[id]; dup {
				t.Errorf("%s: %s is also defined in %s", file, id, prev)
			}
			seen[id] = file
			objects = append(objects, o)
		}
	}
	if len(objects) == 0 {
		t.Fatalf("%s: no manifests", dir)
	}
	return files, objects
}

// empty reports whether a document holds nothing but comments.
func empty(doc *yaml.Node) bool {
	return len(doc.Content) == 1 && doc.Content[0].Kind == yaml.ScalarNode && doc.Content[0].Tag == "!!null"
}

// only returns the one object of kind, decoded into T.
func only[T any](t *testing.T, objects []object, kind string) (T, object) {
	t.Helper()
	var v T
	var found []object
	for _, o := range objects {
		if o.Kind == kind {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d objects of kind %s, want 1", len(found), kind)
	}
	if err := found[0].doc.Decode(&v); err != nil {
		t.Fatalf("%s: %v", found[0], err)
	}
	return v, found[0]
}

type labelSelector struct {
	MatchLabels      map[string]string `yaml:"matchLabels"`
	MatchExpressions []yaml.Node       `yaml:"matchExpressions"`
}

// selects reports whether s selects pods with labels. Only matchLabels is
// understood: a selector with matchExpressions selects nothing here, so that
// this test learns them before it passes such a selector.
func (s labelSelector) selects(labels map[string]string) bool {
	return len(s.MatchExpressions) == 0 && selects(s.MatchLabels, labels)
}

// selects reports whether the non-empty equality selector sel selects
// labels.
func selects(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

type configMap struct {
	Data map[string]yaml.Node `yaml:"data"`
}

type deployment struct {
	Spec struct {
		Replicas *int          `yaml:"replicas"`
		Selector labelSelector `yaml:"selector"`
		Template struct {
			Metadata struct {
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec podSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// runAs holds the securityContext fields of a pod that a container may
// override.
type runAs struct {
	RunAsNonRoot   *bool  `yaml:"runAsNonRoot"`
	RunAsUser      *int64 `yaml:"runAsUser"`
	SeccompProfile *struct {
		Type string `yaml:"type"`
	} `yaml:"seccompProfile"`
}

type podSpec struct {
	SecurityContext struct {
		runAs   `yaml:",inline"`
		Sysctls []struct {
			Name  string `yaml:"name"`
			Value string `yaml:"value"`
		} `yaml:"sysctls"`
	} `yaml:"securityContext"`
	TopologySpreadConstraints []spreadConstraint `yaml:"topologySpreadConstraints"`
	Containers                []container        `yaml:"containers"`
	Volumes                   []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name  string `yaml:"name"`
			Items []struct {
				Key  string `yaml:"key"`
				Path string `yaml:"path"`
			} `yaml:"items"`
		} `yaml:"configMap"`
	} `yaml:"volumes"`
}

type spreadConstraint struct {
	TopologyKey   string        `yaml:"topologyKey"`
	LabelSelector labelSelector `yaml:"labelSelector"`
}

type container struct {
	Name           string          `yaml:"name"`
	Image          string          `yaml:"image"`
	Command        []string        `yaml:"command"`
	Args           []string        `yaml:"args"`
	Ports          []containerPort `yaml:"ports"`
	ReadinessProbe *probe          `yaml:"readinessProbe"`
	LivenessProbe  *probe          `yaml:"livenessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		runAs                    `yaml:",inline"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Privileged               *bool `yaml:"privileged"`
		Capabilities             struct {
			Add  []string `yaml:"add"`
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name        string `yaml:"name"`
		MountPath   string `yaml:"mountPath"`
		SubPath     string `yaml:"subPath"`
		SubPathExpr string `yaml:"subPathExpr"`
	} `yaml:"volumeMounts"`
}

type containerPort struct {
	Name          string `yaml:"name"`
	ContainerPort int    `yaml:"containerPort"`
	Protocol      string `yaml:"protocol"` // "" means TCP
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port string `yaml:"port"` // a number or the name of a container port
	} `yaml:"httpGet"`
	TimeoutSeconds int `yaml:"timeoutSeconds"` // 0 means 1
}

// port returns the number of the container port ref names: a number, or
// the name of one of c's ports with protocol.
func (c container) port(ref, protocol string) (int, error) {
	if n, err := strconv.Atoi(ref); err == nil {
		return n, nil
	}
	for _, p := range c.Ports {
		if p.Name == ref && orDefault(p.Protocol, "TCP") == protocol {
			return p.ContainerPort, nil
		}
	}
	return 0, fmt.Errorf("container %s has no %s port named %q", c.Name, protocol, ref)
}

// hasPort reports whether c declares port number n over protocol.
func (c container) hasPort(n int, protocol string) bool {
	return slices.ContainsFunc(c.Ports, func(p containerPort) bool {
		return p.ContainerPort == n && orDefault(p.Protocol, "TCP") == protocol
	})
}

// orDefault returns s, or def when s is empty: Kubernetes' defaulting.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

type service struct {
	Spec struct {
		Type     string            `yaml:"type"`
		Selector map[string]string `yaml:"selector"`
		Ports    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort string `yaml:"targetPort"` // "" means port
			Protocol   string `yaml:"protocol"`   // "" means TCP
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type podDisruptionBudget struct {
	Spec struct {
		MinAvailable   *string       `yaml:"minAvailable"`
		MaxUnavailable *string       `yaml:"maxUnavailable"`
		Selector       labelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

// TestKustomization checks the kustomization lists every manifest, and only
// those.
func TestKustomization(t *testing.T) {
	files, _ := loadManifests(t, kubernetesDir)
	src, err := os.ReadFile(filepath.Join(kubernetesDir, kustomization))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Resources  []string `yaml:"resources"`
	}
	if err := yaml.Unmarshal(src, &k); err != nil {
		t.Fatalf("%s: %v", kustomization, err)
	}
	if k.Kind != "Kustomization" || !strings.HasPrefix(k.APIVersion, "kustomize.config.k8s.io/") {
		t.Errorf("%s: apiVersion %q kind %q, want a kustomize.config.k8s.io Kustomization", kustomization, k.APIVersion, k.Kind)
	}
	listed := slices.Sorted(slices.Values(k.Resources))
	if !slices.Equal(listed, files) {
		t.Errorf("%s: resources %q, want the manifests %q", kustomization, listed, files)
	}
}

// TestKubernetes checks that the manifests fit together: the Deployment runs
// the policy in the ConfigMap, mounted so that updates reach it; its probes
// and the Service use the ports that policy listens on; the Service and the
// disruption budget select its pods; and the pods run unprivileged.
func TestKubernetes(t *testing.T) {
	_, objects := loadManifests(t, kubernetesDir)
	if t.Failed() {
		t.FailNow()
	}
	dep, depObj := only[deployment](t, objects, "Deployment")
	cm, cmObj := only[configMap](t, objects, "ConfigMap")
	svc, svcObj := only[service](t, objects, "Service")
	pdb, pdbObj := only[podDisruptionBudget](t, objects, "PodDisruptionBudget")

	pod := dep.Spec.Template
	podLabels := pod.Metadata.Labels
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", depObj, len(pod.Spec.Containers))
	}
	c := pod.Spec.Containers[0]

	// The policy: the file the container's -config names, mounted from the
	// ConfigMap as a directory.
	configPath := flagValue(append(slices.Clone(c.Command), c.Args...), "config")
	if !path.IsAbs(configPath) {
		t.Fatalf("%s: container %s has no absolute -config in command %q args %q", depObj, c.Name, c.Command, c.Args)
	}
	configDir, configName := path.Split(configPath)
	configDir = path.Clean(configDir)
	var volumeName string
	for _, m := range c.VolumeMounts {
		switch path.Clean(m.MountPath) {
		case configPath:
			t.Errorf("%s: %s is mounted as a file: a subPath mount is a copy that never sees ConfigMap updates; mount the directory %s", depObj, configPath, configDir)
		case configDir:
			volumeName = m.Name
			if m.SubPath != "" || m.SubPathExpr != "" {
				t.Errorf("%s: the volume at %s has a subPath, so ConfigMap updates never reach it", depObj, configDir)
			}
		}
	}
	if volumeName == "" {
		t.Fatalf("%s: nothing is mounted at %s, the directory of -config %s", depObj, configDir, configPath)
	}
	key := ""
	for _, v := range pod.Spec.Volumes {
		if v.Name != volumeName {
			continue
		}
		if v.ConfigMap == nil || v.ConfigMap.Name != cmObj.Metadata.Name {
			t.Fatalf("%s: volume %s is not the ConfigMap %s", depObj, v.Name, cmObj.Metadata.Name)
		}
		key = configName
		if items := v.ConfigMap.Items; len(items) > 0 {
			key = "" // only the listed keys are in the volume
			for _, item := range items {
				if item.Path == configName {
					key = item.Key
				}
			}
		}
	}
	policyNode, ok := cm.Data[key]
	if key == "" || !ok {
		t.Fatalf("%s: no data key becomes %s in the mounted volume", cmObj, configPath)
	}
	name := fmt.Sprintf("%s[data.%s]", cmObj.file, key)
	start := policyNode.Line
	if policyNode.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		start++ // a block scalar starts on the line after its indicator
	}
	t.Logf("the policy %s starts at line %d of %s", name, start, cmObj.file)
	p := checkPolicy(t, name, []byte(policyNode.Value))

	t.Run("deployment", func(t *testing.T) {
		if r := dep.Spec.Replicas; r == nil || *r < 2 {
			t.Errorf("%s: fewer than 2 replicas: one node going down would stop name resolution", depObj)
		}
		if !dep.Spec.Selector.selects(podLabels) {
			t.Errorf("%s: selector %v does not select its pod labels %v", depObj, dep.Spec.Selector.MatchLabels, podLabels)
		}
		spread := slices.ContainsFunc(pod.Spec.TopologySpreadConstraints, func(tsc spreadConstraint) bool {
			return tsc.TopologyKey == "kubernetes.io/hostname" && tsc.LabelSelector.selects(podLabels)
		})
		if !spread {
			t.Errorf("%s: no topologySpreadConstraint over kubernetes.io/hostname selects the pods", depObj)
		}
		if c.Image == "" {
			t.Errorf("%s: container %s has no image", depObj, c.Name)
		}
		if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
			t.Errorf("%s: resources %+v: want cpu and memory requests and a memory limit", depObj, c.Resources)
		}
	})

	t.Run("probes and metrics", func(t *testing.T) {
		host, portStr, err := net.SplitHostPort(p.Metrics)
		if err != nil {
			t.Fatalf("%s: metrics %q: the probes need the metrics listener", cmObj, p.Metrics)
		}
		if ip, err := netip.ParseAddr(host); err == nil && ip.IsLoopback() {
			t.Errorf("%s: metrics on %s: the kubelet and Prometheus cannot reach a loopback address", cmObj, p.Metrics)
		}
		metricsPort, _ := strconv.Atoi(portStr)
		for _, pr := range []struct {
			name  string
			probe *probe
			path  string
		}{
			{"readinessProbe", c.ReadinessProbe, "/readyz"},
			{"livenessProbe", c.LivenessProbe, "/healthz"},
		} {
			if pr.probe == nil || pr.probe.HTTPGet == nil {
				t.Errorf("%s: no HTTP %s", depObj, pr.name)
				continue
			}
			get := pr.probe.HTTPGet
			if get.Path != pr.path {
				t.Errorf("%s: %s asks for %s, want %s", depObj, pr.name, get.Path, pr.path)
			}
			if n, err := c.port(get.Port, "TCP"); err != nil {
				t.Errorf("%s: %s: %v", depObj, pr.name, err)
			} else if n != metricsPort {
				t.Errorf("%s: %s on port %d, but the policy serves metrics on %s", depObj, pr.name, n, p.Metrics)
			}
		}
		if pr := c.ReadinessProbe; pr != nil && max(pr.TimeoutSeconds, 1) <= readyzTimeout {
			t.Errorf("%s: readinessProbe timeoutSeconds %d: /readyz may wait %ds for an upstream", depObj, pr.TimeoutSeconds, readyzTimeout)
		}
		ann := pod.Metadata.Annotations
		if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != portStr || orDefault(ann["prometheus.io/path"], "/metrics") != "/metrics" {
			t.Errorf("%s: prometheus.io annotations %v, want scrape \"true\" on port %s", depObj, ann, portStr)
		}
	})

	t.Run("dns ports", func(t *testing.T) {
		var listenPorts []int
		for _, a := range p.Listen {
			_, port, _ := net.SplitHostPort(a)
			n, _ := strconv.Atoi(port)
			listenPorts = append(listenPorts, n)
			for _, proto := range []string{"UDP", "TCP"} {
				if !c.hasPort(n, proto) {
					t.Errorf("%s: container %s does not declare port %d/%s the policy listens on", depObj, c.Name, n, proto)
				}
			}
		}
		if svc.Spec.Type != "" && svc.Spec.Type != "ClusterIP" {
			t.Errorf("%s: type %s, want ClusterIP", svcObj, svc.Spec.Type)
		}
		if !selects(svc.Spec.Selector, podLabels) {
			t.Errorf("%s: selector %v does not select the pod labels %v", svcObj, svc.Spec.Selector, podLabels)
		}
		_, metricsPort, _ := net.SplitHostPort(p.Metrics)
		want := map[string]string{"dns-udp": "UDP", "dns-tcp": "TCP"}
		metrics := false
		for _, sp := range svc.Spec.Ports {
			proto := orDefault(sp.Protocol, "TCP")
			target, err := c.port(orDefault(sp.TargetPort, strconv.Itoa(sp.Port)), proto)
			if err != nil {
				t.Errorf("%s: port %s: %v", svcObj, sp.Name, err)
				continue
			}
			if proto == "TCP" && strconv.Itoa(target) == metricsPort {
				metrics = true
			}
			if sp.Port != 53 || want[sp.Name] != proto {
				continue
			}
			delete(want, sp.Name)
			if !slices.Contains(listenPorts, target) {
				t.Errorf("%s: %s goes to port %d, but the policy listens on %q", svcObj, sp.Name, target, p.Listen)
			}
		}
		for name, proto := range want {
			t.Errorf("%s: no port %s, 53/%s", svcObj, name, proto)
		}
		if !metrics {
			t.Errorf("%s: no port leads to the metrics listener %s", svcObj, p.Metrics)
		}
	})

	t.Run("disruption budget", func(t *testing.T) {
		if !pdb.Spec.Selector.selects(podLabels) {
			t.Errorf("%s: selector %v does not select the pod labels %v", pdbObj, pdb.Spec.Selector.MatchLabels, podLabels)
		}
		replicas := 1
		if dep.Spec.Replicas != nil {
			replicas = *dep.Spec.Replicas
		}
		minAvail, maxUnavail := pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable
		switch {
		case (minAvail == nil) == (maxUnavail == nil):
			t.Errorf("%s: set one of minAvailable and maxUnavailable", pdbObj)
		case minAvail != nil:
			if n, err := strconv.Atoi(*minAvail); err != nil || n < 1 || n >= replicas {
				t.Errorf("%s: minAvailable %s, want a count from 1 to %d", pdbObj, *minAvail, replicas-1)
			}
		default:
			if n, err := strconv.Atoi(*maxUnavail); err != nil || n < 1 || n >= replicas {
				t.Errorf("%s: maxUnavailable %s, want a count from 1 to %d", pdbObj, *maxUnavail, replicas-1)
			}
		}
	})

	t.Run("security", func(t *testing.T) {
		podSC, sc := pod.Spec.SecurityContext, c.SecurityContext
		nonRoot := override(sc.RunAsNonRoot, podSC.RunAsNonRoot)
		if nonRoot == nil || !*nonRoot {
			t.Errorf("%s: runAsNonRoot is not true", depObj)
		}
		if uid := override(sc.RunAsUser, podSC.RunAsUser); uid != nil && *uid == 0 {
			t.Errorf("%s: runAsUser 0", depObj)
		}
		if seccomp := override(sc.SeccompProfile, podSC.SeccompProfile); seccomp == nil || seccomp.Type != "RuntimeDefault" {
			t.Errorf("%s: seccompProfile is not RuntimeDefault", depObj)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: readOnlyRootFilesystem is not true", depObj)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation is not false", depObj)
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("%s: privileged", depObj)
		}
		if !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			t.Errorf("%s: capabilities %+v, want drop [ALL] and nothing added", depObj, sc.Capabilities)
		}
		// A non-root container gets no use of an added NET_BIND_SERVICE (the
		// runtime puts it in no ambient set), so a port below 1024 needs the
		// pod's network namespace to treat it as unprivileged.
		unprivilegedFrom := 1024
		for _, s := range podSC.Sysctls {
			if s.Name == "net.ipv4.ip_unprivileged_port_start" {
				n, err := strconv.Atoi(s.Value)
				if err != nil {
					t.Errorf("%s: sysctl %s=%q", depObj, s.Name, s.Value)
				}
				unprivilegedFrom = n
			}
		}
		for _, a := range p.Listen {
			_, port, _ := net.SplitHostPort(a)
			if n, _ := strconv.Atoi(port); n < unprivilegedFrom {
				t.Errorf("%s: the policy listens on %s, but ports below %d are privileged: set the sysctl net.ipv4.ip_unprivileged_port_start to %d", depObj, a, unprivilegedFrom, n)
			}
		}
	})
}

// override returns the container's setting if it has one, else the pod's.
func override[T any](container, pod *T) *T {
	if container != nil {
		return container
	}
	return pod
}
