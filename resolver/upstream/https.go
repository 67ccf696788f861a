package upstream

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/miekg/dns"
)

// HTTPSServer is one upstream resolver reached over DNS over HTTPS (RFC
// 8484): each query a POST of application/dns-message, over HTTP/2 where
// the server offers it, on connections net/http keeps and reuses. The
// certificate is checked against the URL's host under the roots in Config
// (nil RootCAs: the system's); nothing is ever sent in plain text. An
// HTTPSServer is safe for concurrent use once built by NewHTTPSServer.
type HTTPSServer struct {
	url     string
	timeout time.Duration
	client  *http.Client
}

// maxDoHReply bounds the body of a reply read: one DNS message.
const maxDoHReply = dns.MaxMsgSize

// NewHTTPSServer returns the DoH upstream at rawURL (https only), checking
// certificates with roots from cfg.
func NewHTTPSServer(rawURL string, cfg *tls.Config, timeout time.Duration) (*HTTPSServer, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%q is not an https URL", rawURL)
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	tr := &http.Transport{
		TLSClientConfig:     cfg.Clone(),
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     tlsIdle,
		TLSHandshakeTimeout: timeout,
	}
	return &HTTPSServer{url: u.String(), timeout: timeout, client: &http.Client{Transport: tr, Timeout: timeout,
		// A resolver follows no redirect: it would send the query elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// Address returns the server's URL, as logs and metrics show it.
func (s *HTTPSServer) Address() string { return s.url }

// Exchange sends q to the server and returns its reply, with the reply's
// Id set to q's. The query goes with ID 0, as RFC 8484 §4.1 asks, so that
// HTTP caches can share answers.
func (s *HTTPSServer) Exchange(ctx context.Context, q *dns.Msg) (*dns.Msg, error) {
	ctx, cancel, wire, err := prepare(ctx, q, s.url, s.timeout)
	if err != nil {
		return nil, err
	}
	defer cancel()
	binary.BigEndian.PutUint16(wire, 0)
	r, err := s.post(ctx, wire, q.Question[0])
	if err != nil {
		return nil, forwardError(ctx, q, s.url, err)
	}
	r.Id = q.Id
	return r, nil
}

func (s *HTTPSServer) post(ctx context.Context, wire []byte, q dns.Question) (*dns.Msg, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(wire))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/dns-message")
	req.Header.Set("Accept", "application/dns-message")
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the message names the URL already
		}
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxDoHReply+1))
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("HTTP %s", resp.Status)
	case resp.Header.Get("Content-Type") != "application/dns-message":
		return nil, fmt.Errorf("reply of type %q, not application/dns-message", resp.Header.Get("Content-Type"))
	case len(body) > maxDoHReply:
		return nil, fmt.Errorf("reply over %d bytes", maxDoHReply)
	}
	r := new(dns.Msg)
	if err := r.Unpack(body); err != nil {
		return nil, fmt.Errorf("reply: %w", err)
	}
	if !matches(0, q, r) {
		return nil, fmt.Errorf("a reply that does not answer the query")
	}
	return r, nil
}
