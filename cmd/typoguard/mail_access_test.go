package main

import (
	"errors"
	"net/smtp"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// accessChildEnv names, for the copy of TestMailPostfixAccessMap that
// runs inside the network namespace, the directory it works in.
const accessChildEnv = "TYPOGUARD_ACCESS_TEST_DIR"

// TestMailPostfixAccessMap: the Postfix access map that typoguard export
// writes, as check_recipient_access of a real Postfix, refuses a mistyped
// recipient at RCPT with a 5xx that names the domain it looks like, and
// takes the right one. It needs no DNS: the map decides at submission.
func TestMailPostfixAccessMap(t *testing.T) {
	if dir := os.Getenv(accessChildEnv); dir != "" {
		testAccessMapInNetns(t, dir)
		return
	}
	ip := mailTool(t, "ip")
	mailTool(t, "postfix")
	dir, err := os.MkdirTemp("", "typoguard-access")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	policyFile := writeExportPolicy(t, exportTestPolicy)
	if _, errOut, code := runBinary(t, "export", "-config", policyFile, "-format", "postfix", "-widen-types", "-o", filepath.Join(dir, "access")); code != 0 {
		t.Fatalf("export: exit %d: %s", code, errOut)
	}
	ns := newMailNetns(t, ip)
	runInNetns(t, ip, ns, "TestMailPostfixAccessMap", accessChildEnv+"="+dir)
}

// testAccessMapInNetns is the test proper, run inside the network
// namespace, where Postfix may take 127.0.0.1:25.
func testAccessMapInNetns(t *testing.T, dir string) {
	// texthash: reads the map as typoguard wrote it, without postmap.
	pf := startPostfix(t, dir, "smtpd_recipient_restrictions = check_recipient_access texthash:"+filepath.Join(dir, "access")+", permit_mynetworks, reject")
	for _, c := range []struct {
		rcpt string
		want string // "" for accepted, else the start of the reply
	}{
		{"user@arny.mil", "5.1.2 <user@arny.mil>: Recipient address rejected: arny.mil is not army.mil: the address looks like a mistyped army.mil (keyboard neighbour)"},
		{"user@mail.arny.mil", "5.1.2 <user@mail.arny.mil>: Recipient address rejected: arny.mil is not army.mil"},
		{"user@army.ml", "5.1.2 <user@army.ml>: Recipient address rejected: army.ml is not army.mil"},
		{"user@bad.example", "5.7.1 <user@bad.example>: Recipient address rejected: bad.example is blocked for mail by this organisation's policy"},
		{"user@army.mil", ""},
		{"user@partner.ml", ""}, // an exception under the ml block
	} {
		code, msg := rcptReply(t, c.rcpt)
		switch {
		case c.want == "" && code != 250:
			t.Errorf("RCPT TO:<%s>: %d %s, want it accepted\nmaillog:\n%s", c.rcpt, code, msg, pf.log())
		case c.want != "" && (code/100 != 5 || !strings.HasPrefix(msg, c.want)):
			t.Errorf("RCPT TO:<%s>: %d %s, want 5xx %s", c.rcpt, code, msg, c.want)
		default:
			t.Logf("RCPT TO:<%s>: %d %s", c.rcpt, code, msg)
		}
	}
}

// rcptReply opens an SMTP session with the Postfix on 127.0.0.1:25 and
// returns its reply to RCPT TO:<rcpt>.
func rcptReply(t *testing.T, rcpt string) (int, string) {
	t.Helper()
	c, err := smtp.Dial("127.0.0.1:25")
	if err != nil {
		t.Fatalf("connect to postfix: %v", err)
	}
	defer c.Close()
	if err := c.Hello("client.sender.test"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("sender@sender.test"); err != nil {
		t.Fatal(err)
	}
	err = c.Rcpt(rcpt)
	var te *textproto.Error
	switch {
	case err == nil:
		c.Reset()
		return 250, ""
	case errors.As(err, &te):
		return te.Code, te.Msg
	}
	t.Fatalf("RCPT TO:<%s>: %v", rcpt, err)
	return 0, ""
}
