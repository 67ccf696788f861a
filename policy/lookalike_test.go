package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"golang.org/x/net/idna"
)

// lookalikeCases are typos of the corpus's protected domains, each with
// the kind it must be found as, one kind of slip at a time.
var lookalikeCases = []struct{ name, of, kind string }{
	// Suffix typos, kept only where the result is a real suffix.
	{"army.ml", "army.mil", "letter dropped from the suffix"},
	{"army.il", "army.mil", "letter dropped from the suffix"},
	{"mail.army.ml", "army.mil", "letter dropped from the suffix"},
	{"army.mit", "army.mil", "letter replaced in the suffix"},
	{"navy.ml", "navy.mil", "letter dropped from the suffix"},
	{"navy.il", "navy.mil", "letter dropped from the suffix"},
	{"nato.in", "nato.int", "letter dropped from the suffix"},
	{"nato.it", "nato.int", "letter dropped from the suffix"},
	{"nato.nt", "", ""}, // not a real suffix: passes
	{"nato.ing", "nato.int", "letter replaced in the suffix"},
	{"bund.me", "bund.de", "letter replaced in the suffix"},
	{"bund.dk", "bund.de", "letter replaced in the suffix"},
	{"bund.dev", "bund.de", "letter inserted in the suffix"},
	{"canada.ac", "canada.ca", "letters swapped in the suffix"},
	{"regeringen.es", "regeringen.se", "letters swapped in the suffix"},
	{"visitbhutan.bbt", "visitbhutan.bt", "letter doubled in the suffix"},
	{"canada.cat", "canada.ca", "letter inserted in the suffix"},
	{"state.vog", "", ""}, // not a real suffix: passes
	{"army.lim", "", ""},  // not a real suffix: passes
	{"nato.itn", "", ""},  // not a real suffix: passes
	{"mod.ku", "", ""},    // not a real suffix: passes
	{"bund.ds", "", ""},   // not a real suffix: passes
	{"bund.ed", "", ""},   // not a real suffix: passes
	{"mod.us", "mod.uk", "letter replaced in the suffix"},
	{"mod.ua", "mod.uk", "letter replaced in the suffix"},
	{"state.go", "", ""}, // not a real suffix: passes
	{"state.gop", "state.gov", "letter replaced in the suffix"},
	{"example.co", "example.com", "letter dropped from the suffix"},
	{"example.cm", "example.com", "letter dropped from the suffix"},
	{"example.om", "example.com", "letter dropped from the suffix"},
	{"microsoft.cam", "microsoft.com", "letter replaced in the suffix"},
	{"microsoft.comm", "", ""}, // not a real suffix: passes
	{"nhs.ne", "nhs.net", "letter dropped from the suffix"},
	{"nhs.nt", "", ""}, // not a real suffix: passes
	{"nhs.new", "nhs.net", "letter replaced in the suffix"},
	{"parliament.us", "parliament.uk", "letter replaced in the suffix"},
	{"gchq.gov.ua", "gchq.gov.uk", "letter replaced in the suffix"},
	// A second-level suffix added or dropped.
	{"mod.co.uk", "mod.uk", "second-level suffix inserted"},
	{"mod.gov.uk", "mod.uk", "second-level suffix inserted"},
	{"www.mod.org.uk", "mod.uk", "second-level suffix inserted"},
	{"parliament.co.uk", "parliament.uk", "second-level suffix inserted"},
	{"gchq.uk", "gchq.gov.uk", "second-level suffix dropped"},
	{"cabinet-office.uk", "cabinet-office.gov.uk", "second-level suffix dropped"},
	{"state.com.gov", "", ""}, // not a real suffix: passes
	// Label typos.
	{"arny.mil", "army.mil", "keyboard neighbour"},
	{"amry.mil", "army.mil", "letters swapped"},
	{"mail.amry.mil", "army.mil", "letters swapped"},
	{"smtp.arny.mil", "army.mil", "keyboard neighbour"},
	{"ary.mil", "army.mil", "letter dropped"},
	{"rmy.mil", "army.mil", "letter dropped"},
	{"armmy.mil", "army.mil", "letter doubled"},
	{"aarmy.mil", "army.mil", "letter doubled"},
	{"armyy.mil", "army.mil", "letter doubled"},
	{"armoy.mil", "army.mil", "letter inserted"},
	{"armys.mil", "army.mil", "letter inserted"},
	{"army1.mil", "army.mil", "letter inserted"},
	{"ar-my.mil", "army.mil", "hyphen added"},
	{"ermy.mil", "army.mil", "vowel swapped"},
	{"arey.mil", "army.mil", "bit flip"},
	{"arxy.mil", "army.mil", "letter replaced"},
	{"nvy.mil", "navy.mil", "letter dropped"},
	{"nany.mil", "navy.mil", "letter replaced"},
	{"navt.mil", "navy.mil", "keyboard neighbour"},
	{"nacy.mil", "navy.mil", "keyboard neighbour"},
	{"anvy.mil", "navy.mil", "letters swapped"},
	{"nevy.mil", "navy.mil", "vowel swapped"},
	{"navyy.mil", "navy.mil", "letter doubled"},
	{"nav-y.mil", "navy.mil", "hyphen added"},
	{"md.uk", "mod.uk", "letter dropped"},
	{"mood.uk", "mod.uk", "letter doubled"},
	{"mad.uk", "mod.uk", "vowel swapped"},
	{"nod.uk", "mod.uk", "keyboard neighbour"},
	{"mpd.uk", "mod.uk", "keyboard neighbour"},
	{"omd.uk", "mod.uk", "letters swapped"},
	{"modx.uk", "mod.uk", "letter inserted"},
	{"gcqh.gov.uk", "gchq.gov.uk", "letters swapped"},
	{"gchw.gov.uk", "gchq.gov.uk", "keyboard neighbour"},
	{"gcq.gov.uk", "gchq.gov.uk", "letter dropped"},
	{"gchhq.gov.uk", "gchq.gov.uk", "letter doubled"},
	{"gchq2.gov.uk", "gchq.gov.uk", "letter inserted"},
	{"ntao.int", "nato.int", "letters swapped"},
	{"nato0.int", "nato.int", "letter inserted"},
	{"nati.int", "nato.int", "vowel swapped"},
	{"natp.int", "nato.int", "keyboard neighbour"},
	{"bunf.de", "bund.de", "keyboard neighbour"},
	{"bnd.de", "bund.de", "letter dropped"},
	{"bumd.de", "bund.de", "keyboard neighbour"},
	{"bunde.de", "bund.de", "letter inserted"},
	{"buund.de", "bund.de", "letter doubled"},
	{"stat.gov", "state.gov", "letter dropped"},
	{"statte.gov", "state.gov", "letter doubled"},
	{"satte.gov", "state.gov", "letters swapped"},
	{"stste.gov", "state.gov", "keyboard neighbour"},
	{"stete.gov", "state.gov", "vowel swapped"},
	{"st-ate.gov", "state.gov", "hyphen added"},
	{"exmple.com", "example.com", "letter dropped"},
	{"examlpe.com", "example.com", "letters swapped"},
	{"exampel.com", "example.com", "letters swapped"},
	{"exammple.com", "example.com", "letter doubled"},
	{"examples.com", "example.com", "letter inserted"},
	{"exanple.com", "example.com", "keyboard neighbour"},
	{"ex-ample.com", "example.com", "hyphen added"},
	{"micosoft.com", "microsoft.com", "letter dropped"},
	{"mircosoft.com", "microsoft.com", "letters swapped"},
	{"microsfot.com", "microsoft.com", "letters swapped"},
	{"microsoftt.com", "microsoft.com", "letter doubled"},
	{"micro-soft.com", "microsoft.com", "hyphen added"},
	{"microsofr.com", "microsoft.com", "keyboard neighbour"},
	{"mail.microsofy.com", "microsoft.com", "keyboard neighbour"},
	{"parlament.uk", "parliament.uk", "letter dropped"},
	{"parliment.uk", "parliament.uk", "letter dropped"},
	{"parliamnet.uk", "parliament.uk", "letters swapped"},
	{"parliameent.uk", "parliament.uk", "letter doubled"},
	{"parlaiment.uk", "parliament.uk", "letters swapped"},
	{"cabinetoffice.gov.uk", "cabinet-office.gov.uk", "hyphen removed"},
	{"cabinet-ofice.gov.uk", "cabinet-office.gov.uk", "letter dropped"},
	{"cabinet-offfice.gov.uk", "cabinet-office.gov.uk", "letter doubled"},
	{"cabnet-office.gov.uk", "cabinet-office.gov.uk", "letter dropped"},
	{"cabinet-offcie.gov.uk", "cabinet-office.gov.uk", "letters swapped"},
	{"nsh.net", "nhs.net", "letters swapped"},
	{"nhss.net", "nhs.net", "letter doubled"},
	{"nbs.net", "nhs.net", "keyboard neighbour"},
	{"ns.net", "nhs.net", "letter dropped"},
	{"hs.net", "nhs.net", "letter dropped"},
	// Look-alike characters.
	{"arrny.mil", "army.mil", "look-alike characters"},
	{"arnny.mil", "army.mil", "look-alike characters"},
	{"arrry.mil", "army.mil", "look-alike characters"},
	{"rnod.uk", "mod.uk", "look-alike characters"},
	{"m0d.uk", "mod.uk", "look-alike characters"},
	{"nat0.int", "nato.int", "look-alike characters"},
	{"n4t0.int", "nato.int", "look-alike characters"}, // 0 for o, and one slip
	{"exarnple.com", "example.com", "look-alike characters"},
	{"examp1e.com", "example.com", "look-alike characters"},
	{"exampie.com", "example.com", "look-alike characters"},
	{"rnicrosoft.com", "microsoft.com", "look-alike characters"},
	{"micr0s0ft.com", "microsoft.com", "look-alike characters"},
	{"rnlcrosoft.com", "microsoft.com", "look-alike characters"},
	{"parliarnent.uk", "parliament.uk", "look-alike characters"},
	{"par1iament.uk", "parliament.uk", "look-alike characters"},
	{"buncl.de", "bund.de", "look-alike characters"},
	{"gchg.gov.uk", "gchq.gov.uk", "letter replaced"},
	// Unicode look-alikes: a Cyrillic а, accents, hooks, small capitals.
	{"аrmy.mil", "army.mil", "Unicode look-alike characters"},
	{"mail.аrmy.mil", "army.mil", "Unicode look-alike characters"},
	{"ármy.mil", "army.mil", "Unicode look-alike characters"},
	{"ạrmy.mil", "army.mil", "Unicode look-alike characters"},
	{"arᴍy.mil", "army.mil", "Unicode look-alike characters"},
	{"arɱy.mil", "army.mil", "Unicode look-alike characters"},
	{"nаvy.mil", "navy.mil", "Unicode look-alike characters"},
	{"ѕtаtе.gov", "state.gov", "Unicode look-alike characters"},
	{"staŧe.gov", "state.gov", "Unicode look-alike characters"},
	{"micrоsоft.com", "microsoft.com", "Unicode look-alike characters"},
	{"microsoƒt.com", "microsoft.com", "Unicode look-alike characters"},
	{"ехамрӏе.com", "example.com", "Unicode look-alike characters, letter replaced"}, // м has no ASCII look-alike
	{"моԁ.uk", "mod.uk", "Unicode look-alike characters, letter replaced"},
	{"büund.de", "bund.de", "Unicode look-alike characters, letter doubled"},
	{"ärny.mil", "army.mil", "Unicode look-alike characters, keyboard neighbour"},
	{"аrmy.ml", "army.mil", "Unicode look-alike characters, letter dropped from the suffix"},
	// Dot games.
	{"armymil.com", "army.mil", "dot dropped"},
	{"armymil.mil", "army.mil", "dot dropped"},
	{"mail.armymil.net", "army.mil", "dot dropped"},
	{"army-mil.com", "army.mil", "dot turned into a hyphen"},
	{"army-mil.org", "army.mil", "dot turned into a hyphen"},
	{"army.mil.com", "army.mil", "protected name under another domain"},
	{"army.mil-mail.net", "army.mil", "protected name under another domain"},
	{"army.mil.example.org", "army.mil", "protected name under another domain"},
	{"ar.my.mil", "army.mil", "label split by a dot"},
	{"a.rmy.mil", "army.mil", "label split by a dot"},
	{"mail.ar.my.mil", "army.mil", "label split by a dot"},
	{"navymil.com", "navy.mil", "dot dropped"},
	{"moduk.com", "mod.uk", "dot dropped"},
	{"mod-uk.net", "mod.uk", "dot turned into a hyphen"},
	{"mod.uk.com", "mod.uk", "protected name under another domain"},
	{"gchqgov.uk", "gchq.gov.uk", "dot dropped"},
	{"gchq-gov.uk", "gchq.gov.uk", "dot turned into a hyphen"},
	{"gchqgovuk.com", "gchq.gov.uk", "dot dropped"},
	{"gchq.govuk.com", "gchq.gov.uk", "dot dropped"},
	{"gc.hq.gov.uk", "gchq.gov.uk", "label split by a dot"},
	{"nato-int.org", "nato.int", "dot turned into a hyphen"},
	{"na.to.int", "nato.int", "label split by a dot"},
	{"bundde.com", "bund.de", "dot dropped"},
	{"statego.v", "", ""}, // no real suffix: passes
	{"state-gov.com", "state.gov", "dot turned into a hyphen"},
	{"exam.ple.com", "example.com", "label split by a dot"},
	{"examplecom.net", "example.com", "dot dropped"},
	{"microsoft.com.evil.net", "microsoft.com", "protected name under another domain"},
	{"microsoft-com.net", "microsoft.com", "dot turned into a hyphen"},
	{"nhsnet.org", "nhs.net", "dot dropped"},
	{"nhs.net-login.com", "nhs.net", "protected name under another domain"},
	{"parliamentuk.org", "parliament.uk", "dot dropped"},
	{"cabinet-office-gov-uk.com", "cabinet-office.gov.uk", "dot turned into a hyphen"},
	// Case and the trailing dot do not matter.
	{"ARNY.MIL.", "army.mil", "keyboard neighbour"},
	{"Mail.Army.ML", "army.mil", "letter dropped from the suffix"},
}

// realNearNames are real names near the protected domains that are not one
// slip away from any of them, or are the protected domains and names under
// them: every one must pass.
var realNearNames = []string{
	"army.mil", "mail.army.mil", "www.army.mil", "hrc.army.mil", "navy.mil", "public.navy.mil", "mod.uk", "mail.mod.uk",
	"gchq.gov.uk", "www.gchq.gov.uk", "nato.int", "www.nato.int", "bund.de", "service.bund.de", "state.gov", "travel.state.gov",
	"example.com", "www.example.com", "microsoft.com", "login.microsoft.com", "parliament.uk", "members.parliament.uk",
	"cabinet-office.gov.uk", "nhs.net", "mail.nhs.net",
	"army.com", "army.org", "army.gov", "armyfamily.org", "arm.com", "armani.com", "armor.com", "armory.com", "harmony.com",
	"html.com", "ml.com", "mil.com", "statefarm.com", "af.mil", "marines.mil", "socom.mil", "defense.gov", "dla.mil",
	"usmc.mil", "disa.mil", "ng.mil", "spaceforce.mil", "uscg.mil", "dod.mil", "mda.mil", "navy.com", "navyfederal.org",
	"navy.gov", "nav.com", "navi.org", "mod.com", "mod.io", "modx.com", "model.uk", "modern.uk", "moda.com", "gov.uk",
	"www.gov.uk", "hmrc.gov.uk", "nhs.uk", "police.uk", "ncsc.gov.uk", "gchq.com", "gchq.org", "gc.ca", "nato.com",
	"nato.org", "natoaviation.com", "un.int", "who.int", "eu.int", "europa.eu", "itu.int", "wto.org", "bundestag.de",
	"bundesregierung.de", "bundeswehr.de", "bundesbank.de", "bunde.com", "bundle.de", "bunt.com", "band.com",
	"state.com", "states.com", "statefarm.org", "stateofthe.art", "usa.gov", "whitehouse.gov", "senate.gov",
	"house.gov", "estate.com", "statistics.gov.uk", "examples.org", "exampleshop.de", "microsoftonline.com",
	"microsoftstore.com", "micro.com", "microsoft365.org", "msft.net", "windows.com", "office.com", "live.com",
	"parliament.scot", "parliament.wales", "parliament.nz", "europarl.europa.eu", "parliamentlive.tv", "cabinet.gov",
	"cabinetoffice.gov", "office-cabinet.com", "nhs.scot", "nhsbt.nhs.uk", "nhsx.uk", "nhs.wales", "nhsinform.scot",
	"ns.org", "nh.gov", "hs.org", "debian.org", "github.com", "gitlab.com", "gnu.org", "kernel.org", "python.org",
	"golang.org", "go.dev", "mozilla.org", "wikipedia.org", "google.com", "amazon.com", "apple.com", "facebook.com",
	"bbc.co.uk", "theguardian.com", "nytimes.com", "army-technology.com", "armytimes.com", "military.com", "militaryonesource.mil",
	"defence.gov.au", "forces.gc.ca", "bundesheer.at", "defense.gouv.fr", "difesa.it", "defensa.gob.es", "mil.no",
	"mil.se", "army.ca", "army.mod.uk", "royalnavy.mod.uk", "raf.mod.uk", "armymil.mil.example", "mail.google.com",
	"state.nj.us", "navy.lk", "army.lk", "army.gov.au", "navy.gov.au", "nato.gouv.fr", "microsoft.de", "microsoft.co.uk",
	"outlook.com", "hotmail.com", "office365.com", "xn--mgbh0fb.example", "xn--bcher-kva.de", "xn--mnchen-3ya.de",
	"bücher.de", "münchen.de", "zürich.ch", "straße.de", "россия.рф", "中国.cn", "ödeme.com.tr",
	"canada.com", "canadapost.ca", "gc.ca", "regeringskansliet.se", "sweden.se", "bhutan.gov.bt", "tourism.gov.bt",
}

func TestLookalikeCases(t *testing.T) {
	p := corpusPolicy(t)
	client := netip.MustParseAddr("10.0.5.7")
	blocked := 0
	for _, c := range lookalikeCases {
		t.Run(c.name, func(t *testing.T) {
			name := c.name
			if a, err := idna.ToASCII(strings.TrimSuffix(name, ".")); err == nil && a != strings.TrimSuffix(name, ".") {
				name = a
			}
			d := p.Decide(client, name, TypeMX)
			if c.of == "" {
				if d.Rule != nil {
					t.Errorf("%s (%s): blocked, %s; want it to pass", c.name, name, d.Text())
				}
				return
			}
			blocked++
			if !d.Blocked() || d.Lookalike.Of != c.of || d.Lookalike.String() != c.kind {
				t.Errorf("%s (%s): got %s by %v; want a lookalike of %s (%s)", c.name, name, d.Action, d.Text(), c.of, c.kind)
			}
			if d.Rule == nil || d.Rule.Name != "lookalike of "+c.of {
				t.Errorf("%s: rule %v, want \"lookalike of %s\"", c.name, d.Rule, c.of)
			}
		})
	}
	for _, n := range realNearNames {
		name := n
		if a, err := idna.ToASCII(n); err == nil {
			name = a
		}
		for _, qtype := range []uint16{TypeMX, TypeA, TypeAAAA} {
			if d := p.Decide(client, name, qtype); d.Rule != nil {
				t.Errorf("%s (%s) %s: blocked, %s; want it to pass", n, name, TypeString(qtype), d.Text())
			}
		}
	}
	if blocked < 150 || len(realNearNames) < blocked {
		t.Errorf("%d lookalikes and %d real names: want at least 150 lookalikes and as many real names", blocked, len(realNearNames))
	}
	kinds := map[string]bool{}
	for _, c := range lookalikeCases {
		kinds[c.kind] = true
	}
	for _, k := range Kinds() {
		if !kinds[k.String()] {
			t.Errorf("no case of kind %q", k)
		}
	}
}

// TestNearKeys checks the constant-time deletion hashes against hashing
// each deletion.
func TestNearKeys(t *testing.T) {
	for _, s := range []string{"", "a", "aa", "army", "arrmy", "cabinet-office", strings.Repeat("x", 63)} {
		want := map[uint64]bool{polyHash(s): true}
		for i := range s {
			want[polyHash(s[:i]+s[i+1:])] = true
		}
		got := map[uint64]bool{}
		nearKeys(s, func(k uint64) bool { got[k] = true; return true })
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%q: got %d keys %v, want %d %v", s, len(got), got, len(want), want)
		}
	}
}

// TestLookalikePrecedence checks that a rule on an at least as specific
// domain, an allow rule and lookalikes.allow beat lookalike protection,
// and a rule on a broader domain does not.
func TestLookalikePrecedence(t *testing.T) {
	p := mustParse(t, `
client_groups:
  mta: [10.0.5.0/24]
rules:
  - {name: mali, domains: [ml], types: [MX], action: null-mx}
  - {name: arny-ok, domains: [arny.mil], action: allow}
  - {name: sub, domains: [smtp.amry.mil], action: refuse}
lookalikes:
  protect: [army.mil]
  allow: [arm.mil]
  types: [MX, A]
  clients: [mta]
  mode: monitor
`)
	mta, other := netip.MustParseAddr("10.0.5.7"), netip.MustParseAddr("192.168.1.1")
	for _, c := range []struct {
		client netip.Addr
		name   string
		qtype  uint16
		rule   string
		mode   Mode
	}{
		{mta, "army.ml", TypeMX, "lookalike of army.mil", ModeMonitor},
		{other, "army.ml", TypeMX, "mali", ModeEnforce},
		{mta, "army.ml", TypeTXT(), "", ModeEnforce},
		{mta, "arny.mil", TypeMX, "arny-ok", ModeEnforce},
		{mta, "www.arny.mil", TypeA, "arny-ok", ModeEnforce},
		{mta, "arm.mil", TypeMX, "", ModeEnforce},
		{mta, "mail.arm.mil", TypeMX, "", ModeEnforce},
		{mta, "smtp.amry.mil", TypeMX, "sub", ModeEnforce},
		{mta, "mx.amry.mil", TypeMX, "lookalike of army.mil", ModeMonitor},
	} {
		d := p.Decide(c.client, c.name, c.qtype)
		got := ""
		if d.Rule != nil {
			got = d.Rule.Name
		}
		if got != c.rule || (got != "" && d.Mode != c.mode) {
			t.Errorf("%s %s from %s: rule %q (%s), want %q (%s)", c.name, TypeString(c.qtype), c.client, got, d.Mode, c.rule, c.mode)
		}
	}
	var warned bool
	for _, w := range p.Warnings() {
		warned = warned || strings.Contains(w.Msg, `rule "arny-ok" exempts arny.mil from lookalike protection: it looks like army.mil (keyboard neighbour)`)
	}
	if !warned {
		t.Errorf("no warning about the exception for arny.mil: %v", p.Warnings())
	}
}

// TypeTXT is the TXT record type, which lookalikes.types above leaves out.
func TypeTXT() uint16 { return 16 }

// FuzzLookalike checks that judging any name never panics and never finds
// a protected domain, or a name under one, to be a lookalike.
func FuzzLookalike(f *testing.F) {
	for _, c := range lookalikeCases {
		f.Add(c.name)
	}
	for _, n := range realNearNames[:40] {
		f.Add(n)
	}
	f.Add("xn--80ajb1au1a38g.com")
	f.Add("a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s.t.army.mil-")
	p, err := ForDomains(corpusProtect)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string) {
		l, ok := p.LookalikeOf(name)
		if ok && !p.Touches(name) {
			t.Fatalf("%q is a lookalike of %s, yet Touches says no rule could decide it", name, l.Of)
		}
		if !ok {
			return
		}
		if of, prot := p.ProtectedBy(name); prot {
			t.Fatalf("%q is under protected %s, yet judged a lookalike of %s (%s)", name, of, l.Of, l)
		}
		if !strings.HasSuffix(strings.ToLower(strings.TrimSuffix(name, ".")), strings.ToLower(l.Name)) {
			t.Fatalf("%q: lookalike domain %q is not a tail of the name", name, l.Name)
		}
		d := p.Decide(netip.MustParseAddr("10.0.0.1"), name, TypeMX)
		if !d.Blocked() {
			t.Fatalf("%q: a lookalike of %s, but MX is %s", name, l.Of, d.Action)
		}
	})
}
