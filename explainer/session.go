package explainer

import (
	"context"
	"io"
	"log/slog"
	"net/netip"

	"github.com/emersion/go-smtp"

	"github.com/typoguard/typoguard/policy"
)

// backend starts a session per connection for one generation of settings.
type backend struct {
	srv *Server
}

// NewSession implements smtp.Backend.
func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{srv: b.srv, client: remoteAddr(c.Conn())}, nil
}

// session is one SMTP session: it remembers the envelope sender and
// refuses every recipient.
type session struct {
	srv    *Server
	client netip.Addr
	from   string
}

// Mail implements smtp.Session: every sender is accepted, so that the
// recipients can be refused with a reason.
func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

// Rcpt implements smtp.Session: every recipient is refused, with the
// policy's reason, and logged.
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	r := Refuse(s.srv.policy(), s.client, to)
	s.srv.obs.Refused(r.Rule())
	s.audit(to, r)
	return &smtp.SMTPError{Code: r.Code, EnhancedCode: smtp.EnhancedCode(r.Enhanced), Message: r.Text}
}

// audit logs one refused recipient.
func (s *session) audit(rcpt string, r Refusal) {
	log := s.srv.log
	if !log.Enabled(context.Background(), slog.LevelInfo) {
		return
	}
	attrs := []any{
		"client", s.client.String(),
		"from", s.from,
		"rcpt", rcpt,
		"reply", r.Status(),
	}
	if d := r.Decision; d.Rule != nil {
		attrs = append(attrs, "rule", d.Rule.Name, "action", d.Action.String())
	}
	if l := r.Lookalike; l.Kind != policy.KindNone {
		attrs = append(attrs, "looks_like", l.Of, "kind", l.String())
	}
	log.Info("refused at sinkhole", attrs...)
}

// Data implements smtp.Session. With every recipient refused the library
// never calls it; were it called, the message is refused unread.
func (s *session) Data(io.Reader) error { return errNoRecipients }

// Reset implements smtp.Session.
func (s *session) Reset() { s.from = "" }

// Logout implements smtp.Session.
func (s *session) Logout() error { return nil }

// errNoRecipients refuses a message: no recipient was accepted
// (RFC 5321 §3.3).
var errNoRecipients = &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "no valid recipients"}
