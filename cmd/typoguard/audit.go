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
	bufp, _ := a.l.lineBufs.Get().(*[]byte)
	if bufp == nil {
		buf := make([]byte, 0, 512)
		bufp = &buf
	}
	*bufp = appendAuditLine((*bufp)[:0], time.Now(), a.l.json.Load(), line)
	a.l.out.Write(*bufp)
	a.l.lineBufs.Put(bufp)
}

// levelInfo is slog.LevelInfo, the audit lines' level.
const levelInfo = 0

// appendAuditLine appends the audit line a, logged at t, as slog's JSON or
// text handler writes it, newline included.
func appendAuditLine(b []byte, t time.Time, json bool, a resolver.AuditLine) []byte {
	f := auditFormat{b: b, json: json}
	if json {
		f.b = append(f.b, `{"time":"`...)
		f.b = appendStamp(f.b, t, false)
		f.b = append(f.b, `","level":"INFO","msg":`...)
		f.value(a.Verdict)
	} else {
		f.b = append(f.b, "time="...)
		f.b = appendStamp(f.b, t, true)
		f.b = append(f.b, " level=INFO msg="...)
		f.value(a.Verdict)
	}
	var client [64]byte
	f.field("client", string(a.Client.AppendTo(client[:0])))
	f.field("name", a.Name)
	f.field("type", a.Type)
	f.field("rule", a.Rule)
	f.field("action", a.Action)
	f.field("mode", a.Mode)
	f.key("cached")
	f.b = strconv.AppendBool(f.b, a.Cached)
	if a.LooksLike != "" {
		f.field("looks_like", a.LooksLike)
		f.field("kind", a.Kind)
	}
	if a.Via != "" {
		f.field("via", a.Via)
	}
	if json {
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
	digits := 3
	if !millis {
		if ns == 0 {
			return append(b, st.zone...)
		}
		digits = 9
		for v := ns; v%10 == 0; v /= 10 {
			digits--
		}
	}
	b = append(b, '.')
	for i, div := 0, 100_000_000; i < digits; i, div = i+1, div/10 {
		b = append(b, byte('0'+ns/div%10))
	}
	return append(b, st.zone...)
}
