package explainer

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/typoguard/typoguard/policy"
)

// checkLine fails unless line can be sent as one SMTP reply line: at most
// 512 octets with its CRLF, printable ASCII only.
func checkLine(t *testing.T, line string) {
	t.Helper()
	if len(line)+2 > maxReplyLine {
		t.Errorf("reply line of %d octets with CRLF, over %d: %q", len(line)+2, maxReplyLine, line)
	}
	for i := 0; i < len(line); i++ {
		if c := line[i]; c < ' ' || c > '~' {
			t.Fatalf("reply has byte %#x at %d: %q", c, i, line)
		}
	}
}

func TestRefusalTextFits(t *testing.T) {
	long := strings.Repeat(strings.Repeat("a", 63)+".", 3) + strings.Repeat("b", 61)
	cases := []struct {
		name, domain, rule string
		look               policy.Lookalike
	}{
		{"longest names", long, strings.Repeat("r", 300), policy.Lookalike{Of: long, Name: long, Kind: policy.Kinds()[0]}},
		{"rule with line breaks", "army.ml", "a\r\n250 ok\r\nb", policy.Lookalike{}},
		{"rule in Unicode", "army.ml", "règle \"x\" ✓", policy.Lookalike{}},
		{"no rule, long domain", long, "", policy.Lookalike{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text := refusalText(tc.domain, ruleName(tc.rule), tc.look)
			checkLine(t, Reply{Code: 550, Enhanced: [3]int{5, 1, 2}, Text: text}.String())
			if tc.look.Kind != policy.KindNone && !strings.Contains(text, " is not ") {
				t.Errorf("lookalike refusal does not say what it is not: %q", text)
			}
		})
	}
}

// FuzzRefusal checks that whatever the recipient and whatever the names in
// the policy, the refusal is one permanent reply line within RFC 5321's
// limit, with no CR, LF or other control character.
func FuzzRefusal(f *testing.F) {
	f.Add("user@army.ml", "mali-is-not-mil", "army.ml", "army.mil")
	f.Add("user@xn--rmy-qla.mil", "r\r\n", "xn--rmy-qla.mil", "army.mil")
	f.Add("@", strings.Repeat("x", 600), "", "")
	f.Add("a@b@c.d\x00", "\xff\xfe", "c.d", "x\ny")
	p := mustPolicy(f, testPolicy)
	client := netip.MustParseAddr("127.0.0.1")
	f.Fuzz(func(t *testing.T, rcpt, rule, name, of string) {
		r := Refuse(p, client, rcpt)
		if r.Code != 550 || r.Enhanced[0] != 5 {
			t.Fatalf("reply %s to %q is not a permanent refusal", r, rcpt)
		}
		checkLine(t, r.String())
		kinds := policy.Kinds()
		look := policy.Lookalike{Of: of, Name: name, Kind: kinds[len(rcpt)%len(kinds)]}
		checkLine(t, Reply{Code: 550, Enhanced: [3]int{5, 1, 2}, Text: refusalText(rcpt, ruleName(rule), look)}.String())
		checkLine(t, Reply{Code: 550, Enhanced: [3]int{5, 7, 1}, Text: refusalText(rcpt, ruleName(rule), policy.Lookalike{})}.String())
	})
}
