package policy

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestRPZSettings(t *testing.T) {
	secrets := map[string]string{
		"keys/xfr.key":             "c2VjcmV0LXNlY3JldC1zZWNyZXQtMTIzNA==\n",
		"/etc/typoguard/other.key": "key \"other.example\" {\n\talgorithm hmac-sha256;\n\tsecret \"b3RoZXItb3RoZXItb3RoZXItNTY3OA==\";\n};\n",
	}
	p, err := Parse("test.yaml", []byte(`rpz:
  listen: "[::1]:5353"
  zone: RPZ.Typoguard.Internal.
  allow_transfer: [10.0.0.0/8, "fd00::53"]
  notify: ["10.0.0.53", "[fd00::53]:5353"]
  tsig:
    - {name: xfr.example, algorithm: HMAC-SHA256., secret_file: keys/xfr.key}
    - {name: other.example, secret_file: /etc/typoguard/other.key}
`), Options{Now: testNow, OpenList: listsFrom(func(name string) ([]byte, error) { return []byte(secrets[name]), nil })})
	if err != nil {
		t.Fatal(err)
	}
	r := p.RPZ
	if !r.Configured() || r.Listen != "[::1]:5353" || r.Zone != "rpz.typoguard.internal." {
		t.Errorf("rpz = %+v", r)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::53/128")}; !slices.Equal(r.AllowTransfer, want) {
		t.Errorf("allow_transfer = %v, want %v", r.AllowTransfer, want)
	}
	if want := []string{"10.0.0.53:53", "[fd00::53]:5353"}; !slices.Equal(r.Notify, want) {
		t.Errorf("notify = %v, want %v", r.Notify, want)
	}
	want := []TSIGKey{
		{Name: "xfr.example.", Algorithm: "hmac-sha256", SecretFile: "keys/xfr.key", Secret: "c2VjcmV0LXNlY3JldC1zZWNyZXQtMTIzNA==", Pos: Position{"test.yaml", 7, 7}},
		{Name: "other.example.", Algorithm: "hmac-sha256", SecretFile: "/etc/typoguard/other.key", Secret: "b3RoZXItb3RoZXItb3RoZXItNTY3OA==", Pos: Position{"test.yaml", 8, 7}},
	}
	if !slices.Equal(r.TSIG, want) {
		t.Errorf("tsig = %+v, want %+v", r.TSIG, want)
	}
	if p := mustParse(t, "rules: []\n"); p.RPZ.Configured() {
		t.Errorf("rpz configured without the section: %+v", p.RPZ)
	}
}

// TestRPZErrors covers what the all-errors file cannot hold: missing keys
// and errors that one file shows only once.
func TestRPZErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"rpz without zone", "rpz:\n  listen: 127.0.0.1:5353\n", "p.yaml:2:3: rpz: needs zone"},
		{"rpz without listen", "rpz:\n  zone: rpz.example\n", "p.yaml:2:3: rpz: needs listen"},
		{"rpz empty", "rpz:\n", "p.yaml:1:5: rpz: needs zone"},
		{"rpz not a mapping", "rpz: rpz.example\n", "p.yaml:1:6: rpz: want a mapping, got a string"},
		{"rpz.listen a list", "rpz: {listen: [\"127.0.0.1:5353\"], zone: rpz.example}\n", "p.yaml:1:15: rpz.listen: want a string, got a list"},
		{"rpz.zone invalid", "rpz: {listen: \"127.0.0.1:5353\", zone: \"bad..zone\"}\n", `p.yaml:1:39: rpz.zone: invalid domain "bad..zone": empty label`},
		{"rpz.zone root", "rpz: {listen: \"127.0.0.1:5353\", zone: \".\"}\n", `p.yaml:1:39: rpz.zone: invalid domain ".": empty name`},
		{"tsig empty secret_file", "rpz: {listen: \"127.0.0.1:5353\", zone: rpz.example, tsig: [{name: k, secret_file: \"\"}]}\n",
			"rpz.tsig secret_file: empty path"},
		{"tsig not a list", "rpz: {listen: \"127.0.0.1:5353\", zone: rpz.example, tsig: {name: k}}\n", "rpz.tsig: want a list, got a mapping"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("p.yaml", []byte(tc.src), Options{Now: testNow})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}
