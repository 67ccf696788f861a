package explainer

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/typoguard/typoguard/policy"
)

// maxReplyLine is the longest reply line RFC 5321 §4.5.3.1.5 allows, CRLF
// included.
const maxReplyLine = 512

// maxText is the longest text after "550 5.1.2 " that keeps a reply line
// within maxReplyLine.
const maxText = maxReplyLine - len("550 5.1.2 ") - len("\r\n")

// maxRuleName bounds how much of a rule's name a reply quotes.
const maxRuleName = 64

// Reply is one SMTP reply line: a code, an enhanced status code (RFC 3463)
// and text that is printable ASCII and fits one reply line.
type Reply struct {
	Code     int
	Enhanced [3]int
	Text     string
}

// String returns the reply as sent, without the CRLF.
func (r Reply) String() string {
	return strconv.Itoa(r.Code) + " " + r.Status() + " " + r.Text
}

// Status returns the enhanced status code, such as "5.1.2".
func (r Reply) Status() string {
	e := r.Enhanced
	return strconv.Itoa(e[0]) + "." + strconv.Itoa(e[1]) + "." + strconv.Itoa(e[2])
}

// Refusal is the explainer's answer to one recipient, and why.
type Refusal struct {
	Reply
	// Domain is the recipient's domain as the policy compares it; "" when
	// the address has none that is a host name.
	Domain string
	// Decision is what the policy decides for mail to Domain from the
	// client: the first of its MX, A and AAAA lookups that is blocked. Its
	// Rule is nil when nothing blocks them.
	Decision policy.Decision
	// Lookalike is set (Kind not KindNone) when Domain looks like a
	// protected domain, whichever rule decides.
	Lookalike policy.Lookalike
}

// Rule names the rule the refusal quotes; "" when none blocks the domain.
func (r Refusal) Rule() string {
	if r.Decision.Rule == nil {
		return ""
	}
	return r.Decision.Rule.Name
}

// mailTypes are the lookups an MTA makes to deliver to a domain (RFC 5321
// §5.1): its MX, then its addresses when it has no MX.
var mailTypes = []uint16{policy.TypeMX, policy.TypeA, policy.TypeAAAA}

// Refuse decides the reply to RCPT TO:<rcpt> from client, by the same
// decisions that answer the client's DNS lookups. Every recipient is
// refused with a permanent error: 5.1.2 (bad destination system) when the
// domain is a lookalike or no host name, 5.7.1 (delivery not authorized)
// otherwise.
func Refuse(p *policy.Policy, client netip.Addr, rcpt string) Refusal {
	r := Refusal{Reply: Reply{Code: 550, Enhanced: [3]int{5, 1, 2}}}
	at := strings.LastIndexByte(rcpt, '@')
	if at < 0 {
		r.Text = noDomainText
		return r
	}
	domain, ok := policy.CanonicalName(rcpt[at+1:])
	if !ok {
		r.Text = noDomainText
		return r
	}
	r.Domain = domain
	for _, t := range mailTypes {
		if d := p.Decide(client, domain, t); d.Blocked() {
			r.Decision = d
			break
		}
	}
	r.Lookalike = r.Decision.Lookalike
	if r.Lookalike.Kind == policy.KindNone {
		r.Lookalike, _ = p.LookalikeOf(domain)
	}
	if r.Lookalike.Kind == policy.KindNone {
		r.Enhanced = [3]int{5, 7, 1}
	}
	r.Text = refusalText(domain, ruleName(r.Rule()), r.Lookalike)
	return r
}

// noDomainText refuses an address without a domain name to speak of.
const noDomainText = "this host is a typoguard sinkhole and accepts no mail; this message was not sent - check the address"

// refusalText explains the refusal of mail to domain in one line of at most
// maxText printable ASCII characters. rule is "" when no rule blocks the
// domain; l.Kind is KindNone when it looks like no protected domain. The
// longest form that fits is used.
func refusalText(domain, rule string, l policy.Lookalike) string {
	const notSent = "this message was not sent - check the address"
	by := ""
	if rule != "" {
		by = " (typoguard rule \"" + rule + "\")"
	}
	var forms []string
	if l.Kind != policy.KindNone {
		name, of := printable(strings.ToLower(l.Name)), printable(l.Of)
		head := name + " is not " + of + ": "
		if d := printable(domain); d != name {
			// Mail to a name under the lookalike, such as mail.army.ml.
			head = d + " is under " + name + ", which is not " + of + ": "
		}
		forms = []string{
			head + "the address looks like a mistyped " + of + " (" + l.String() + "); " + notSent + by,
			head + "the address looks like a mistyped " + of + "; " + notSent + by,
			head + "the address looks like a mistyped one; " + notSent,
			head + notSent,
		}
	} else {
		domain = printable(domain)
		if rule != "" {
			forms = []string{domain + " is blocked for mail by this organisation's policy" + by + "; " + notSent}
		}
		forms = append(forms,
			domain+": this host is a typoguard sinkhole and accepts no mail; "+notSent,
			domain+": "+notSent)
	}
	for _, f := range forms {
		if len(f) <= maxText {
			return f
		}
	}
	return forms[len(forms)-1][:maxText]
}

// ruleName is the part of a rule's name a reply quotes: printable ASCII
// without quotes, at most maxRuleName characters.
func ruleName(name string) string {
	name = strings.ReplaceAll(printable(name), "\"", "'")
	if len(name) > maxRuleName {
		name = name[:maxRuleName-3] + "..."
	}
	return name
}

// printable replaces every byte of s that is not printable ASCII with '?',
// so that a reply never carries a control character, a line break or
// bytes an SMTP client may not accept (RFC 5321 §4.2).
func printable(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] < ' ' || b[j] > '~' {
					b[j] = '?'
				}
			}
			return string(b)
		}
	}
	return s
}
