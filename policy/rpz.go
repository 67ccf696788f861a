package policy

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// RPZSettings describe the policy served as a Response Policy Zone, for
// resolvers that typoguard does not replace.
type RPZSettings struct {
	Listen        string         // host:port, TCP, where secondaries transfer the zone (AXFR/IXFR)
	Zone          string         // the zone's name: lower-case FQDN with trailing dot
	AllowTransfer []netip.Prefix // clients that may transfer the zone; empty: none
	Notify        []string       // ip:port of the secondaries told of each new serial (NOTIFY)
	TSIG          []TSIGKey      // keys that sign transfers and NOTIFY; empty: unsigned
	// WidenTypes serves rules scoped to query types as blocking every
	// type (Exporter.Export's widenTypes); otherwise they are left out.
	WidenTypes bool
	// MaxRecords bounds the zone's entries; a policy whose zone would
	// hold more is served without its zone. Default
	// DefaultMaxExportRecords.
	MaxRecords int
	Pos        Position // of the rpz section; zero when absent
}

// Configured reports whether the policy file has an rpz section.
func (r RPZSettings) Configured() bool { return r.Pos.Line > 0 }

// TSIGKey is a shared secret that signs zone transfers (RFC 8945).
type TSIGKey struct {
	Name       string   // the key's name: lower-case FQDN with trailing dot
	Algorithm  string   // "hmac-sha256", the only one accepted
	SecretFile string   // as written; relative paths are taken from the policy file's directory
	Secret     string   // the secret, base64, as read from SecretFile
	Pos        Position // of the key's entry
}

// tsigAlgorithms are the TSIG algorithms a key may name.
var tsigAlgorithms = []string{"hmac-sha256"}

func (d *decoder) rpz(v *yaml.Node) RPZSettings {
	r := RPZSettings{MaxRecords: DefaultMaxExportRecords}
	hasListen, hasZone := false, false
	d.mapping(v, "rpz", map[string]field{
		"listen": func(v *yaml.Node) {
			hasListen = true
			if a, ok := d.str(v, "rpz.listen"); ok {
				if hp, ok := d.hostPort(v, a, "rpz.listen", "", false); ok {
					r.Listen = hp
				}
			}
		},
		"zone": func(v *yaml.Node) {
			hasZone = true
			if name, ok := d.fqdn(v, "rpz.zone", "a zone"); ok {
				r.Zone = name
			}
		},
		"allow_transfer": func(v *yaml.Node) {
			d.strs(v, "rpz.allow_transfer", func(n *yaml.Node, s string) {
				if p, ok := d.prefix(n, s, "rpz.allow_transfer"); ok {
					r.AllowTransfer = append(r.AllowTransfer, p)
				}
			})
		},
		"notify": func(v *yaml.Node) {
			d.strs(v, "rpz.notify", func(n *yaml.Node, s string) {
				if hp, ok := d.hostPort(n, s, "rpz.notify", "53", true); ok {
					r.Notify = append(r.Notify, hp)
				}
			})
		},
		"widen_types": func(v *yaml.Node) { d.boolean(v, "rpz.widen_types", &r.WidenTypes) },
		"max_records": func(v *yaml.Node) { d.positive(v, "rpz.max_records", &r.MaxRecords) },
		"tsig": func(v *yaml.Node) {
			seen := map[string]Position{}
			for _, item := range d.list(v, "rpz.tsig") {
				k, ok := d.tsigKey(item)
				if !ok {
					continue
				}
				if first, dup := seen[k.Name]; dup {
					d.errorf(item, "rpz.tsig: key %s is already defined at line %d", strings.TrimSuffix(k.Name, "."), first.Line)
					continue
				}
				seen[k.Name] = k.Pos
				r.TSIG = append(r.TSIG, k)
			}
		},
	})
	if !section(v) {
		return RPZSettings{}
	}
	r.Pos = d.pos(resolve(v))
	if !hasZone {
		d.errorf(v, "rpz: needs zone, the name the Response Policy Zone is served under (e.g. rpz.typoguard.internal)")
	}
	if !hasListen {
		d.errorf(v, "rpz: needs listen, the TCP address secondaries transfer the zone from (e.g. \"127.0.0.1:5353\")")
	}
	return r
}

// tsigKey reads one rpz.tsig entry; it reports false if anything is wrong.
func (d *decoder) tsigKey(n *yaml.Node) (TSIGKey, bool) {
	k := TSIGKey{Algorithm: "hmac-sha256", Pos: d.pos(n)}
	hasName, hasSecret := false, false
	errs := len(d.errs)
	d.mapping(n, "rpz.tsig key", map[string]field{
		"name": func(v *yaml.Node) {
			hasName = true
			k.Name, _ = d.fqdn(v, "rpz.tsig name", "a key")
		},
		"algorithm": func(v *yaml.Node) {
			d.scalar(v, "rpz.tsig algorithm", func(s string) error {
				a := strings.ToLower(strings.TrimSuffix(s, "."))
				for _, known := range tsigAlgorithms {
					if a == known {
						k.Algorithm = a
						return nil
					}
				}
				return fmt.Errorf("unsupported algorithm %q (want %s)", s, strings.Join(tsigAlgorithms, " or "))
			})
		},
		"secret_file": func(v *yaml.Node) {
			hasSecret = true
			d.scalar(v, "rpz.tsig secret_file", func(s string) error {
				if strings.TrimSpace(s) == "" {
					return errors.New("empty path")
				}
				k.SecretFile = s
				return nil
			})
		},
	})
	if resolve(n).Kind != yaml.MappingNode {
		return k, false
	}
	if !hasName {
		d.errorf(n, "rpz.tsig key: needs a name")
	}
	if !hasSecret {
		d.errorf(n, "rpz.tsig key: needs secret_file, the file that holds the shared secret")
	}
	return k, len(d.errs) == errs
}

// fqdn reads a host or zone name, not a wildcard, as a lower-case FQDN with
// a trailing dot; kind ("a zone") says what it names for the wildcard error.
func (d *decoder) fqdn(v *yaml.Node, what, kind string) (string, bool) {
	s, ok := d.str(v, what)
	if !ok {
		return "", false
	}
	name, below, err := normalizeDomain(s)
	if err == nil && below {
		err = fmt.Errorf("%s name cannot be a wildcard", kind)
	}
	if err != nil {
		d.errorf(v, "%s: %v", what, err)
		return "", false
	}
	return name + ".", true
}

// warnRPZ says that an rpz section is checked but not acted on.
// maxSecretBytes bounds a TSIG secret file.
const maxSecretBytes = 4096

// loadTSIG reads each rpz.tsig key's secret_file, through the list opener,
// relative to the policy file as lists are. The file holds the secret in
// base64, alone or as the secret "..." of a BIND key statement
// (tsig-keygen's output).
func (c *compiler) loadTSIG() {
	for i := range c.p.RPZ.TSIG {
		k := &c.p.RPZ.TSIG[i]
		at := nodeAt(k.Pos)
		f, _, err := c.openList(k.SecretFile)
		if err != nil {
			c.d.errorf(at, "rpz.tsig %s: secret_file: %v", strings.TrimSuffix(k.Name, "."), err)
			continue
		}
		b, err := io.ReadAll(io.LimitReader(f, maxSecretBytes+1))
		f.Close()
		text := strings.TrimSpace(string(b))
		if i := strings.Index(text, "secret"); i >= 0 {
			if q := strings.Split(text[i:], "\""); len(q) >= 3 {
				text = q[1]
			}
		}
		raw, decodeErr := base64.StdEncoding.DecodeString(text)
		switch {
		case err != nil:
			c.d.errorf(at, "rpz.tsig %s: cannot read %s: %v", strings.TrimSuffix(k.Name, "."), k.SecretFile, unwrapPath(err))
		case len(b) > maxSecretBytes:
			c.d.errorf(at, "rpz.tsig %s: %s is over %d bytes", strings.TrimSuffix(k.Name, "."), k.SecretFile, maxSecretBytes)
		case decodeErr != nil || len(raw) < 16:
			c.d.errorf(at, "rpz.tsig %s: %s holds no base64 secret of at least 16 bytes (make one with tsig-keygen -a hmac-sha256)", strings.TrimSuffix(k.Name, "."), k.SecretFile)
		default:
			k.Secret = text
		}
	}
}

func (c *compiler) warnRPZ() {
	r := c.p.RPZ
	if !r.Configured() {
		return
	}
	if len(r.AllowTransfer) == 0 {
		c.warnf(r.Pos, "rpz: no allow_transfer: every transfer of the zone is refused")
	}
	if r.WidenTypes {
		return
	}
	var scoped []string
	for _, rule := range c.p.rules {
		if len(rule.Types) > 0 && !rule.Expired {
			scoped = append(scoped, strconv.Quote(rule.Name))
		}
	}
	if len(c.p.lookRules) > 0 {
		scoped = append(scoped, "lookalike protection")
	}
	if len(scoped) > 0 {
		c.warnf(r.Pos, "rpz: %s scoped to query types, which RPZ has none of, so the zone leaves them out: set rpz.widen_types: true to serve them for every type", strings.Join(scoped, ", "))
	}
}
