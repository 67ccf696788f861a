package policy_test

import (
	"fmt"
	"net/netip"

	"github.com/typoguard/typoguard/policy"
)

func Example() {
	src := []byte(`
client_groups:
  mta: [10.0.5.0/24]
rules:
  - name: mali-is-not-mil
    domains: [ml]
    types: [MX, ANY]
    action: nxdomain
  - name: mali-addresses-for-mail-servers
    domains: [ml]
    types: [A, AAAA]
    clients: [mta]
    action: nxdomain
  - name: our-partner-in-mali
    domains: [partner.ml]
    action: allow
`)
	p, err := policy.Parse("policy.yaml", src, policy.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	mailServer := netip.MustParseAddr("10.0.5.7")
	laptop := netip.MustParseAddr("192.168.1.20")
	for _, q := range []struct {
		client netip.Addr
		name   string
		qtype  uint16
	}{
		{laptop, "army.ml.", policy.TypeMX},
		{laptop, "Mail.Army.ML", policy.TypeA},
		{mailServer, "mail.army.ml.", policy.TypeA},
		{mailServer, "partner.ml.", policy.TypeMX},
		{mailServer, "army.mil.", policy.TypeMX},
	} {
		d := p.Decide(q.client, q.name, q.qtype)
		rule := "no rule"
		if d.Rule != nil {
			rule = fmt.Sprintf("rule %q, line %d", d.Rule.Name, d.Rule.Pos.Line)
		}
		fmt.Printf("%-13s %-4s from %-12s → %s (%s)\n", q.name, policy.TypeString(q.qtype), q.client, d.Effective(), rule)
	}
	// Output:
	// army.ml.      MX   from 192.168.1.20 → nxdomain (rule "mali-is-not-mil", line 5)
	// Mail.Army.ML  A    from 192.168.1.20 → allow (no rule)
	// mail.army.ml. A    from 10.0.5.7     → nxdomain (rule "mali-addresses-for-mail-servers", line 9)
	// partner.ml.   MX   from 10.0.5.7     → allow (rule "our-partner-in-mali", line 14)
	// army.mil.     MX   from 10.0.5.7     → allow (no rule)
}
