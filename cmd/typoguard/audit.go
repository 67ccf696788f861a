package main

import (
	"strconv"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/typoguard/typoguard/resolver"
)

// The audit line is the one log line a query can cost, and under a flood
// of blocked names it is written at the rate of the flood. So the log
// switch formats it itself, into a reused buffer, to exactly the
// bytes slog's handler in force would write, rather than through slog's
// generic attribute machinery (a test holds the two to the same bytes).

// auditLog is the resolver.Auditor that writes through the log switch, in
// the format and at the level in force.
type auditLog struct{ l *logSwitch }

// Enabled implements resolver.Auditor: audit lines are at info level.
func (a auditLog) Enabled() bool { return a.l.level.Level() <= levelInfo }

// Audit implements resolver.Auditor.
func (a auditLog) Audit(line resolver.AuditLine) {
	json := a.l.json.Load()
	fx := a.l.fixed.Load()
	if !fx.fits(json, line) {
		fx = renderFixed(json, line)
		a.l.fixed.Store(fx)
	}
	t := line.Time
	if t.IsZero() {
		t = time.Now()
	}
	a.l.out.writeWith(func(b []byte) []byte { return appendAuditWith(b, t, fx, line) })
}

// levelInfo is slog.LevelInfo, the audit lines' level.
const levelInfo = 0

// auditFixed is what the lines of one rule share, rendered once: the
// format, the verdict, rule, action and mode, and the bytes they make.
type auditFixed struct {
	json                        bool
	verdict, rule, action, mode string
	// head follows the time: level, message and the client's key; mid
	// follows the type: rule, action, mode and the cached key.
	head, mid []byte
}

// renderFixed renders the parts of a's line that its rule's lines share.
func renderFixed(json bool, a resolver.AuditLine) *auditFixed {
	fx := &auditFixed{json: json, verdict: a.Verdict, rule: a.Rule, action: a.Action, mode: a.Mode}
	f := auditFormat{json: json}
	if json {
		f.b = append(f.b, `","level":"INFO","msg":`...)
	} else {
		f.b = append(f.b, " level=INFO msg="...)
	}
	f.value(a.Verdict)
	f.key("client")
	fx.head = f.b
	f = auditFormat{json: json}
	f.field("rule", a.Rule)
	f.field("action", a.Action)
	f.field("mode", a.Mode)
	f.key("cached")
	fx.mid = f.b
	return fx
}

// fits reports whether fx renders a's shared parts in the format json.
func (fx *auditFixed) fits(json bool, a resolver.AuditLine) bool {
	return fx != nil && fx.json == json && fx.verdict == a.Verdict && fx.rule == a.Rule &&
		fx.action == a.Action && fx.mode == a.Mode
}

// appendAuditWith appends the audit line a, logged at t, as slog's JSON or
// text handler writes it, newline included; fx renders its shared parts.
func appendAuditWith(b []byte, t time.Time, fx *auditFixed, a resolver.AuditLine) []byte {
	f := auditFormat{b: b, json: fx.json}
	if fx.json {
		f.b = append(f.b, `{"time":"`...)
		f.b = appendStamp(f.b, t, false)
	} else {
		f.b = append(f.b, "time="...)
		f.b = appendStamp(f.b, t, true)
	}
	f.b = append(f.b, fx.head...)
	var client [64]byte
	f.value(string(a.Client.AppendTo(client[:0])))
	f.field("name", a.Name)
	f.field("type", a.Type)
	f.b = append(f.b, fx.mid...)
	f.b = strconv.AppendBool(f.b, a.Cached)
	if a.LooksLike != "" {
		f.field("looks_like", a.LooksLike)
		f.field("kind", a.Kind)
	}
	if a.Via != "" {
		f.field("via", a.Via)
	}
	if fx.json {
		f.b = append(f.b, '}')
	}
	return append(f.b, '\n')
}

// auditFormat appends the fields of one line in slog's JSON or text form.
type auditFormat struct {
	b    []byte
	json bool
}

func (f *auditFormat) key(k string) {
	if f.json {
		f.b = append(f.b, ',', '"')
		f.b = append(f.b, k...)
		f.b = append(f.b, '"', ':')
		return
	}
	f.b = append(f.b, ' ')
	f.b = append(f.b, k...)
	f.b = append(f.b, '=')
}

func (f *auditFormat) field(k, v string) {
	f.key(k)
	f.value(v)
}

// value appends a string value as slog does: a JSON string, or in text
// bare unless it needs quoting.
func (f *auditFormat) value(s string) {
	if f.json {
		f.b = append(f.b, '"')
		f.b = appendJSONEscaped(f.b, s)
		f.b = append(f.b, '"')
		return
	}
	if needsQuoting(s) {
		f.b = strconv.AppendQuote(f.b, s)
		return
	}
	f.b = append(f.b, s...)
}

// jsonSafe reports the ASCII bytes a JSON string holds as they are.
func jsonSafe(c byte) bool { return c >= ' ' && c != '"' && c != '\\' }

// jsonPlain marks the bytes a JSON string holds as they are: ASCII that
// jsonSafe passes (a byte of a multi-byte character is not marked).
var jsonPlain = func() (t [256]bool) {
	for c := range utf8.RuneSelf {
		t[c] = jsonSafe(byte(c))
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// appendJSONEscaped escapes s for a JSON string as slog does: \\ \" \n \r
// \t, other control bytes as \u00XX, invalid UTF-8 as \ufffd, and U+2028
// and U+2029 escaped.
func appendJSONEscaped(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		for i < len(s) && jsonPlain[s[i]] { // the common run, a load a byte
			i++
		}
		if i == len(s) {
			break
		}
		if c := s[i]; c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			b = append(b, '\\')
			switch c {
			case '\\', '"':
				b = append(b, c)
			case '\n':
				b = append(b, 'n')
			case '\r':
				b = append(b, 'r')
			case '\t':
				b = append(b, 't')
			default:
				b = append(b, 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(b, s[start:]...)
}

// needsQuoting reports whether slog's text handler quotes s.
func needsQuoting(s string) bool {
	if s == "" {
		return true
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c != '\\' && (c == ' ' || c == '=' || !jsonSafe(c)) {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return true
		}
		i += size
	}
	return false
}

// stamp is the part of a line's time that one second of lines share: its
// date, time of day and zone in RFC 3339.
type stamp struct {
	sec  int64
	loc  *time.Location
	date []byte // 2006-01-02T15:04:05
	zone []byte // Z or +01:00
}

// lastStamp is the stamp of the latest second a line was logged in.
var lastStamp atomic.Pointer[stamp]

// appendStamp appends t as slog's handlers do: RFC 3339 with, for JSON,
// the nanoseconds without trailing zeros (RFC3339Nano) or, for text
// (millis), exactly three digits of fractional second. The part of it
// every line of a second shares is formatted once a second.
func appendStamp(b []byte, t time.Time, millis bool) []byte {
	st := lastStamp.Load()
	if st == nil || st.sec != t.Unix() || st.loc != t.Location() {
		if y := t.Year(); y < 0 || y > 9999 { // not four digits: never kept
			if millis {
				return t.AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
			}
			return t.AppendFormat(b, time.RFC3339Nano)
		}
		st = &stamp{sec: t.Unix(), loc: t.Location(), date: t.AppendFormat(nil, "2006-01-02T15:04:05"), zone: t.AppendFormat(nil, "Z07:00")}
		lastStamp.Store(st)
	}
	b = append(b, st.date...)
	ns := t.Nanosecond()
	if !millis && ns == 0 {
		return append(b, st.zone...)
	}
	// The nine digits of the nanoseconds, two at a time.
	var d [9]byte
	v := ns
	for i := 7; i > 0; i -= 2 {
		d[i], d[i+1] = twoDigits[v%100*2], twoDigits[v%100*2+1]
		v /= 100
	}
	d[0] = byte('0' + v)
	n := 3
	if !millis {
		n = 9
		for d[n-1] == '0' {
			n--
		}
	}
	b = append(b, '.')
	b = append(b, d[:n]...)
	return append(b, st.zone...)
}

// twoDigits holds 00 to 99, each number's two digits at twice its value.
const twoDigits = "00010203040506070809101112131415161718192021222324252627282930313233343536373839" +
	"40414243444546474849505152535455565758596061626364656667686970717273747576777879" +
	"8081828384858687888990919293949596979899"
