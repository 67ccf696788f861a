// Package policy reads typoguard's YAML policy file and decides, for a
// client, a query name and a record type, what typoguard answers.
//
// It does no I/O of its own (list files are read through Options.OpenList)
// and knows nothing of the DNS wire format: a compiled Policy is immutable,
// safe for concurrent use, and decides without allocating.
package policy

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Options control how a policy file is loaded.
type Options struct {
	// OpenList opens a domains_from list, which is then read once, start to
	// end, a line at a time; its path is already joined to the policy
	// file's directory. size is the file's length when known (else 0): it
	// only sizes the domain table. Nil: a policy with domains_from is an
	// error.
	OpenList func(name string) (r io.ReadCloser, size int64, err error)
	// Now is the clock for exception expiry; nil means time.Now.
	Now func() time.Time
	// SkipExpired loads a policy whose exceptions have expired, leaving those
	// rules out (they never apply) and reporting each as a warning, where
	// check treats them as errors. A running resolver uses it so an expired
	// exception stops applying instead of keeping the old policy alive.
	SkipExpired bool
	// ListDomain, when set, is given each domain that the lists of the
	// rule at index rule (of Policy.Rules) add, normalized: the domain and
	// the names under it, or (below) only those.
	ListDomain func(rule int, name string, below bool)
}

// Policy is a compiled, immutable policy file.
type Policy struct {
	Settings
	File string // the path it was loaded from, as given

	rules    []Rule
	table    *table
	warnings []Warning
	// look finds lookalikes of lookalikes.protect; nil when the section is
	// absent. lookRules holds one rule per protected domain, by index.
	look      *lookalikeIndex
	lookRules []Rule
	// roots are upstream_ca_file's certificates, and rootsID the SHA-256
	// of that file; nil and "" for the system's roots.
	roots   *x509.CertPool
	rootsID string
}

// UpstreamRoots returns the roots that encrypted upstreams' certificates
// are checked against, nil for the system's, and an identity of them:
// two policies with the same identity have the same roots.
func (p *Policy) UpstreamRoots() (*x509.CertPool, string) { return p.roots, p.rootsID }

// maxCABytes bounds upstream_ca_file.
const maxCABytes = 1 << 20

// loadRoots reads upstream_ca_file, through the list opener, relative to
// the policy file as lists are.
func (c *compiler) loadRoots() {
	p := c.p
	if p.UpstreamCAFile == "" {
		return
	}
	at := nodeAt(p.UpstreamCAPos)
	f, _, err := c.openList(p.UpstreamCAFile)
	if err != nil {
		c.d.errorf(at, "upstream_ca_file: %v", err)
		return
	}
	defer f.Close()
	pem, err := io.ReadAll(io.LimitReader(f, maxCABytes+1))
	switch {
	case err != nil:
		c.d.errorf(at, "upstream_ca_file: cannot read %s: %v", p.UpstreamCAFile, unwrapPath(err))
		return
	case len(pem) > maxCABytes:
		c.d.errorf(at, "upstream_ca_file: %s is over %d bytes", p.UpstreamCAFile, maxCABytes)
		return
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		c.d.errorf(at, "upstream_ca_file: %s holds no PEM certificate", p.UpstreamCAFile)
		return
	}
	sum := sha256.Sum256(pem)
	p.roots, p.rootsID = pool, hex.EncodeToString(sum[:])
}

// Rules returns the policy's rules in file order. The caller must not
// modify them.
func (p *Policy) Rules() []Rule { return p.rules }

// Warnings returns what check reports about a valid policy.
func (p *Policy) Warnings() []Warning { return p.warnings }

// DomainCount returns the number of distinct domains in the policy's rules.
func (p *Policy) DomainCount() int { return p.table.count() }

// Parse compiles the policy file named file whose contents are src. Every
// problem in the file and its lists comes back together as an ErrorList.
func Parse(file string, src []byte, opts Options) (*Policy, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	d := &decoder{file: file}
	var root yaml.Node
	if err := yaml.Unmarshal(src, &root); err != nil {
		return nil, ErrorList{yamlSyntaxError(file, err)}
	}
	var doc *yaml.Node
	if len(root.Content) > 0 {
		doc = root.Content[0]
	} else {
		doc = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: 1, Column: 1}
	}
	t := now()
	settings, raws := d.decodeFile(doc, t)
	p := &Policy{Settings: settings, File: file}
	if !p.Lookalikes.Configured() {
		p.Lookalikes = LookalikeSettings{}
	}
	if p.Explainer.Configured() && p.Explainer.Hostname == "" {
		p.Explainer.Hostname = strings.TrimSuffix(p.Answers.SinkholeMX, ".")
	}
	c := compiler{d: d, p: p, opts: opts, now: t}
	c.compile(raws)
	c.loadRoots()
	c.loadTSIG()
	if len(d.errs) > 0 {
		sortErrors(file, d.errs)
		return nil, d.errs
	}
	c.warn()
	return p, nil
}

// yamlSyntaxError turns yaml.v3's "yaml: line N: msg" into a positioned
// error; yaml.v3 gives no column for syntax errors.
func yamlSyntaxError(file string, err error) Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ":"); i > 0 {
			if _, scanErr := fmt.Sscanf(rest[:i], "%d", &line); scanErr == nil {
				msg = strings.TrimSpace(rest[i+1:])
			}
		}
	}
	if line == 0 {
		line = 1
	}
	return Error{Pos: Position{File: file, Line: line, Col: 1}, Msg: "YAML syntax: " + msg}
}

// compiler turns decoded rules into the policy's domain table.
type compiler struct {
	d    *decoder
	p    *Policy
	opts Options
	now  time.Time
	// domains counts the list domains read so far, against
	// limits.list_domains.
	domains int
	// shadowed counts, per rule, the domains an earlier rule always decides.
	shadowed []int
	shadower []int // per rule, the index of one rule that shadows it
}

// ExpirySoon is how close to its expiry a rule is warned about.
const ExpirySoon = 14 * 24 * time.Hour

// Bounds on what a policy may make typoguard read and hold; over them the
// policy is refused.
const (
	// MaxPolicyBytes is the largest policy file read.
	MaxPolicyBytes = 16 << 20
	// MaxListBytes is the default of limits.list_bytes, the largest
	// domains_from list file read.
	MaxListBytes = 1 << 30
	// MaxListLine is the longest line of a list file.
	MaxListLine = 1024
	// MaxDomains is the default of limits.list_domains, how many domains
	// all of a policy's lists may hold.
	MaxDomains = 10_000_000
	// MaxListErrors is how many errors one list file may have before the
	// rest of it is not read.
	MaxListErrors = 50
)

func (c *compiler) compile(raws []rawRule) {
	d, p := c.d, c.p
	groups := map[string]*ClientGroup{}
	for i := range p.ClientGroups {
		groups[p.ClientGroups[i].Name] = &p.ClientGroups[i]
	}
	names := map[string]Position{}
	hint := 0
	for i := range raws {
		r := &raws[i]
		if first, dup := names[r.Name]; dup && r.Name != "" {
			d.errorf(nodeAt(r.Pos), "rule name %q is already used by the rule at line %d", r.Name, first.Line)
		} else {
			names[r.Name] = r.Pos
		}
		for j, n := range r.clientNodes {
			g, ok := groups[r.Clients[j]]
			if !ok {
				d.errorf(n, "clients: no client group named %q (define it under client_groups)", r.Clients[j])
				continue
			}
			r.clients = append(r.clients, g.Prefixes...)
		}
		if r.Expired && !c.opts.SkipExpired {
			d.errorf(nodeAt(r.Pos), "rule %q expired on %s: renew or remove the exception", r.Name, r.Expires.Format(time.DateOnly))
		}
		if r.Action == ActionSinkhole && !p.Answers.SinkholeIPv4.IsValid() && !p.Answers.SinkholeIPv6.IsValid() {
			d.errorf(nodeAt(r.Pos), "rule %q: action sinkhole needs answers.sinkhole_ipv4 or answers.sinkhole_ipv6", r.Name)
		}
		hint += len(r.domainNodes)
	}
	p.table = newTable(hint)
	c.shadowed = make([]int, len(raws))
	c.shadower = make([]int, len(raws))
	p.rules = make([]Rule, len(raws))
	var lr lineReader
	for i := range raws {
		r := &raws[i]
		idx := uint32(i)
		skip := r.Expired // an expired rule never applies
		for _, n := range r.domainNodes {
			s := resolve(n).Value
			name, below, err := normalizeDomain(s)
			if err != nil {
				d.errorf(n, "domains: %v", err)
				continue
			}
			r.Domains = append(r.Domains, displayDomain(name, below))
			if !skip {
				c.add(r, idx, []byte(name), below)
			} else {
				r.DomainCount++
			}
		}
		for j, ln := range r.listNodes {
			f, size, err := c.openList(r.DomainsFrom[j])
			if err == nil && size > int64(p.Limits.ListBytes) {
				f.Close()
				err = fmt.Errorf("cannot read %s: %d bytes, over the limit of %d (limits.list_bytes)", filepath.ToSlash(c.listPath(r.DomainsFrom[j])), size, p.Limits.ListBytes)
			}
			if err != nil {
				d.errorf(ln, "domains_from: %v", err)
				continue
			}
			lr.reset(f, int64(p.Limits.ListBytes))
			c.addList(r, idx, c.listPath(r.DomainsFrom[j]), r.ListFormats[j], d.pos(ln), &lr, size, skip)
			f.Close()
		}
		p.rules[i] = r.Rule
	}
	c.compileLookalikes(groups)
	for i := range p.rules {
		p.rules[i].Index = i
	}
	for i := range p.lookRules {
		p.lookRules[i].Index = len(p.rules) + i
	}
}

// compileLookalikes indexes lookalikes.protect and makes the rule that
// decides each protected domain's lookalikes, named "lookalike of DOMAIN".
func (c *compiler) compileLookalikes(groups map[string]*ClientGroup) {
	l := &c.p.Lookalikes
	if !l.Configured() || len(l.Protect) == 0 {
		return
	}
	var clients []netip.Prefix
	for j, n := range l.clientNodes {
		g, ok := groups[l.Clients[j]]
		if !ok {
			c.d.errorf(n, "lookalikes.clients: no client group named %q (define it under client_groups)", l.Clients[j])
			continue
		}
		clients = append(clients, g.Prefixes...)
	}
	if l.Action == ActionSinkhole && !c.p.Answers.SinkholeIPv4.IsValid() && !c.p.Answers.SinkholeIPv6.IsValid() {
		c.d.errorf(nodeAt(l.Pos), "lookalikes: action sinkhole needs answers.sinkhole_ipv4 or answers.sinkhole_ipv6")
	}
	c.p.look = newLookalikeIndex(l.Protect, l.Allow)
	c.p.lookRules = make([]Rule, len(c.p.look.protected))
	for i, d := range c.p.look.protected {
		c.p.lookRules[i] = Rule{
			Name:        "lookalike of " + d.name,
			Domains:     []string{d.name},
			DomainCount: 1,
			Types:       l.Types,
			Action:      l.Action,
			Mode:        l.Mode,
			Clients:     l.Clients,
			Pos:         l.ProtectPos[i],
			types:       l.types,
			clients:     clients,
		}
	}
}

// sortErrors puts errors in file order: the policy file's first, then each
// list file's in the order the lists were named.
func sortErrors(file string, errs ErrorList) {
	rank := map[string]int{file: 0}
	for _, e := range errs {
		if _, ok := rank[e.Pos.File]; !ok {
			rank[e.Pos.File] = len(rank)
		}
	}
	sort.SliceStable(errs, func(i, j int) bool {
		a, b := errs[i].Pos, errs[j].Pos
		if rank[a.File] != rank[b.File] {
			return rank[a.File] < rank[b.File]
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// nodeAt makes a stand-in node for errors at a known position.
func nodeAt(p Position) *yaml.Node { return &yaml.Node{Line: p.Line, Column: p.Col} }

// listPath joins a domains_from path to the policy file's directory.
func (c *compiler) listPath(name string) string { return ListPath(c.p.File, name) }

// ListPath is where a domains_from entry of the policy file at policyFile
// is read from: relative paths are taken from the policy file's directory.
func ListPath(policyFile, name string) string {
	if filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(filepath.Dir(policyFile), filepath.FromSlash(path.Clean(name)))
}

func (c *compiler) openList(name string) (io.ReadCloser, int64, error) {
	if c.opts.OpenList == nil {
		return nil, 0, fmt.Errorf("cannot read list %s here", name)
	}
	p := c.listPath(name)
	f, size, err := c.opts.OpenList(p)
	if err != nil {
		return nil, 0, fmt.Errorf("cannot read %s: %w", filepath.ToSlash(p), unwrapPath(err))
	}
	return f, size, nil
}

// unwrapPath drops the path an fs.PathError repeats.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// maxDomains is the bound on the domains of the policy's lists.
func (c *compiler) maxDomains() int { return c.p.Limits.ListDomains }

// add ties one normalized domain to rule r.
func (c *compiler) add(r *rawRule, idx uint32, name []byte, onlyBelow bool) {
	flags := refApex | refBelow
	if onlyBelow {
		flags = refBelow
	}
	if c.p.table.add(name, idx, flags) {
		r.DomainCount++
	}
}

// addList adds the domains of one list file, in format, to rule r,
// reading it through lr; at names where the policy file names the list.
// size, when known, sizes the table for it from the lines of its first
// buffer. After MaxListErrors errors the rest of the file is not read, so
// a file of garbage costs no more than a few lines.
func (c *compiler) addList(r *rawRule, idx uint32, file string, format ListFormat, at Position, lr *lineReader, size int64, skip bool) {
	if size > 0 && !skip {
		c.reserve(lr.sample(), size)
	}
	errs := 0
	fail := func(msg string) bool {
		errs++
		c.listError(file, lr.line, msg)
		if errs < MaxListErrors {
			return true
		}
		c.listError(file, lr.line, fmt.Sprintf("%d errors: the rest of this file is not read", errs))
		return false
	}
	// addName adds one name as a list writes it; false: stop reading.
	addName := func(f []byte) bool {
		if hostsBuiltin(f) {
			return true
		}
		name, below, err := normalizeListDomain(f)
		if err != nil {
			return fail(err.Error())
		}
		if limit := c.maxDomains(); c.domains >= limit {
			c.listError(file, lr.line, fmt.Sprintf("the policy's lists hold %d domains, the most a policy may: the rest of this file is not read", limit))
			return false
		}
		c.domains++
		if skip {
			r.DomainCount++
			return true
		}
		if c.p.table.full() {
			c.listError(file, lr.line, "the policy's lists fill the 4,294,967,294 domains a policy can hold: the rest of this file is not read")
			return false
		}
		c.add(r, idx, name, below)
		if c.opts.ListDomain != nil {
			c.opts.ListDomain(int(idx), string(name), below)
		}
		return true
	}
	skips := listSkips{}
	var rpz rpzReader
	for {
		line, n, ok := lr.next()
		if !ok {
			break
		}
		if n > MaxListLine {
			if !fail(fmt.Sprintf("line is %d bytes long, over the limit of %d", n, MaxListLine)) {
				return
			}
			continue
		}
		switch format {
		case ListAdblock:
			name, why := adblockLine(bytes.TrimSpace(line))
			if why != "" {
				skips[why]++
			} else if name != nil && !addName(name) {
				return
			}
			continue
		case ListRPZ:
			name, below, why, err := rpz.line(line)
			switch {
			case err != nil:
				if !fail(err.Error()) {
					return
				}
			case why != "":
				skips[why]++
			case name != "":
				if below {
					name = "*." + name
				}
				if !addName([]byte(name)) {
					return
				}
			}
			continue
		}
		if i := bytes.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		fields := [][]byte{line}
		if bytes.IndexByte(line, ' ') >= 0 || bytes.IndexByte(line, '\t') >= 0 {
			fields = bytes.Fields(line)
		}
		if len(fields) > 1 || looksLikeAddr(fields[0]) {
			if _, err := netip.ParseAddr(string(fields[0])); err != nil {
				if !fail(fmt.Sprintf("want one domain, or a hosts-file line \"ADDRESS NAME...\"; got %q", line)) {
					return
				}
				continue
			}
			fields = fields[1:]
		} else if bytes.HasPrefix(line, []byte("||")) {
			if !fail(fmt.Sprintf("%q is an adblock filter: give this list format: adblock", line)) {
				return
			}
			continue
		}
		for _, f := range fields {
			if !addName(f) {
				return
			}
		}
	}
	if lr.err != nil {
		c.listError(file, lr.line+1, fmt.Sprintf("cannot read: %v", unwrapPath(lr.err)))
	}
	if n := skips.total(); n > 0 {
		c.p.warnings = append(c.p.warnings, Warning{Pos: at,
			Msg: fmt.Sprintf("%s, read as %s: %s: %s", filepath.ToSlash(file), format, plural(n, "line names no domain and was skipped", "lines name no domain and were skipped"), skips.summary())})
	}
}

// plural is "1 one" or "N many".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// reserve sizes the table for a list file of size bytes whose first
// bytes are sample, for as many names as the sample's density says (a
// little over, rather than copy the entries once more at the end: capacity
// never written costs no memory).
func (c *compiler) reserve(sample []byte, size int64) {
	var lines int64
	for rest := sample; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		if line := bytes.TrimSpace(rest[:i]); len(line) > 0 && line[0] != '#' {
			lines++
		}
		rest = rest[i+1:]
	}
	if lines == 0 {
		return
	}
	if n := int64(len(sample)); n < size {
		lines = size*lines/n + 1
	}
	c.p.table.reserve(int(min(lines, int64(c.maxDomains()-c.domains))))
}

// lineReader reads a list file a line at a time through one reused
// buffer, so that no line, however long, is held whole. It passes over
// blank lines and comment lines itself: a file of nothing but those costs
// a byte scan, not a call per line.
type lineReader struct {
	rd   io.Reader
	buf  []byte
	r, w int  // the unread bytes are buf[r:w]
	eof  bool // rd has no more
	err  error
	line int   // the number of the line next returned
	max  int64 // the bytes it may read of the file
	left int64 // of those, not yet read
}

// listBuffer is the lineReader's buffer; it is over MaxListLine, so every
// line short enough to use is seen whole.
const listBuffer = 64 << 10

// reset makes l read rd, of which it reads at most max bytes: more is an
// error, as a file that grows while read.
func (l *lineReader) reset(rd io.Reader, max int64) {
	if l.buf == nil {
		l.buf = make([]byte, listBuffer)
	}
	*l = lineReader{rd: rd, buf: l.buf, max: max, left: max}
}

// fill moves the unread bytes to the front of the buffer and reads more
// after them, until the buffer is full or the file ends.
func (l *lineReader) fill() {
	l.w = copy(l.buf, l.buf[l.r:l.w])
	l.r = 0
	for l.w < len(l.buf) && !l.eof {
		n, err := l.rd.Read(l.buf[l.w:])
		l.w += n
		if l.left -= int64(n); l.left < 0 {
			l.w += int(l.left) // what is over the limit is not read
			err = fmt.Errorf("over the limit of %d bytes (limits.list_bytes) once read", l.max)
		}
		if err != nil {
			l.eof = true
			if err != io.EOF {
				l.err = err
			}
		}
	}
}

// sample returns the file's first bytes, up to a buffer, leaving them unread.
func (l *lineReader) sample() []byte {
	if l.w == 0 && !l.eof {
		l.fill()
	}
	return l.buf[l.r:l.w]
}

// next returns the next line that has something other than a comment at
// its start, without its newline, and its length n; l.line is then its
// number. A line longer than the buffer is read to its end but not
// returned (line is nil, n its length). ok is false at the end of the file.
func (l *lineReader) next() (line []byte, n int, ok bool) {
	for {
		if line, n, ok := l.scan(); ok {
			return line, n, true
		}
		if l.eof {
			if l.r == l.w || l.err != nil {
				return nil, 0, false // a line a read error cut short is not used
			}
			line, l.r = l.buf[l.r:l.w], l.w
			l.line++
			return line, len(line), true
		}
		if l.r == 0 && l.w == len(l.buf) {
			return nil, l.skipLong(), true
		}
		l.fill()
	}
}

// scan returns the next whole line in the buffer that is neither blank
// nor a comment, as next does; ok is false when the buffer holds none.
// It works on locals: this loop is all a file of blank lines costs.
func (l *lineReader) scan() (line []byte, n int, ok bool) {
	buf, r, w, no := l.buf[:l.w], l.r, l.w, l.line
	defer func() { l.r, l.line = r, no }()
	for r < w {
		if buf[r] == '\n' {
			r++
			no++
			continue
		}
		j := r
		for j < w && (buf[j] == ' ' || buf[j] == '\t' || buf[j] == '\r') {
			j++
		}
		end := j
		for end < w && end-r <= 16 && buf[end] != '\n' { // most lines end soon
			end++
		}
		if end < w && buf[end] != '\n' {
			i := bytes.IndexByte(buf[end:w], '\n')
			if i < 0 {
				return nil, 0, false // not whole in the buffer
			}
			end += i
		} else if end == w {
			return nil, 0, false
		}
		start := r
		r = end + 1
		no++
		if (j == end || buf[j] == '#') && end-start <= MaxListLine {
			continue // blank or a comment
		}
		return buf[start:end], end - start, true
	}
	return nil, 0, false
}

// skipLong reads past a line that fills the whole buffer and returns its
// length.
func (l *lineReader) skipLong() int {
	n := 0
	for {
		if i := bytes.IndexByte(l.buf[l.r:l.w], '\n'); i >= 0 {
			l.r += i + 1
			l.line++
			return n + i
		}
		n += l.w - l.r
		l.r = l.w
		if l.eof {
			l.line++
			return n
		}
		l.fill()
	}
}

func (c *compiler) listError(file string, line int, msg string) {
	c.d.errs = append(c.d.errs, Error{Pos: Position{File: file, Line: line}, Msg: msg})
}

// looksLikeAddr reports whether a lone field is an IP address rather than a
// domain: it holds a colon, or only digits and dots.
func looksLikeAddr(f []byte) bool {
	if bytes.IndexByte(f, ':') >= 0 {
		return true
	}
	for _, b := range f {
		if b != '.' && (b < '0' || b > '9') {
			return false
		}
	}
	return true
}

// hostsBuiltin reports names that hosts files map for the machine itself;
// they are never meant as blocked domains.
func hostsBuiltin(f []byte) bool {
	switch string(f) {
	case "localhost", "localhost.localdomain", "local", "broadcasthost",
		"ip6-localhost", "ip6-loopback", "ip6-localnet", "ip6-mcastprefix",
		"ip6-allnodes", "ip6-allrouters", "ip6-allhosts", "0.0.0.0":
		return true
	}
	return false
}

// normalizeListDomain is normalizeDomain with a fast path, free of
// allocation, for the plain lower-case ASCII names that make up nearly every
// large list. The result may share f's memory.
func normalizeListDomain(f []byte) ([]byte, bool, error) {
	if name := bytes.TrimSuffix(f, []byte(".")); plainHostName(name) {
		return name, false, nil
	}
	name, below, err := normalizeDomain(string(f))
	return []byte(name), below, err
}

// plainHostName reports whether name is a valid host name that needs no
// normalizing, in one pass: lower-case letters, digits, '-' and '_' in
// labels of 1 to 63 octets that neither start nor end with '-' and are no
// A-label ("xn--"), 253 octets at most, no trailing dot.
func plainHostName(name []byte) bool {
	if len(name) == 0 || len(name) > 253 {
		return false
	}
	start := 0
	for i := 0; i <= len(name); i++ {
		if i < len(name) {
			if c := name[i]; c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' {
				continue
			} else if c == '-' {
				// "xn--": the hyphens at the label's third and fourth octets.
				if i == start || i == start+3 && name[i-1] == '-' && name[start] == 'x' && name[start+1] == 'n' {
					return false
				}
				continue
			} else if c != '.' {
				return false
			}
		}
		if n := i - start; n == 0 || n > 63 || name[i-1] == '-' {
			return false
		}
		start = i + 1
	}
	return true
}

// warn gathers warnings about a valid policy.
func (c *compiler) warn() {
	p := c.p
	c.findShadowed()
	for i := range p.rules {
		r := &p.rules[i]
		switch {
		case r.Expired:
			p.warnings = append(p.warnings, Warning{Pos: r.Pos,
				Msg: fmt.Sprintf("rule %q expired on %s and is not applied", r.Name, r.Expires.Format(time.DateOnly))})
		case r.DomainCount > 0 && c.shadowed[i] == r.DomainCount:
			by := &p.rules[c.shadower[i]]
			p.warnings = append(p.warnings, Warning{Pos: r.Pos,
				Msg: fmt.Sprintf("rule %q can never apply: an earlier rule on the same domains decides first (%q at line %d)", r.Name, by.Name, by.Pos.Line)})
		}
		if left := r.Expires.Add(24 * time.Hour).Sub(c.now); !r.Expires.IsZero() && !r.Expired && left <= ExpirySoon {
			p.warnings = append(p.warnings, Warning{Pos: r.Pos,
				Msg: fmt.Sprintf("rule %q expires on %s, in %d days: renew it or let it lapse", r.Name, r.Expires.Format(time.DateOnly), int(left.Hours()/24))})
		}
		switch {
		case r.Mode == ModeMonitor && r.Action == ActionForward:
			p.warnings = append(p.warnings, Warning{Pos: r.Pos,
				Msg: fmt.Sprintf("rule %q: in mode monitor a forward rule is not applied: its queries go to the default upstreams, not to its servers", r.Name)})
		case r.Mode == ModeMonitor && !r.Action.Blocking():
			p.warnings = append(p.warnings, Warning{Pos: r.Pos,
				Msg: fmt.Sprintf("rule %q: mode monitor makes no difference to action %s", r.Name, r.Action)})
		}
	}
	if len(p.rules) == 0 {
		p.warnings = append(p.warnings, Warning{Pos: Position{File: p.File, Line: 1, Col: 1},
			Msg: "no rules: every query is forwarded"})
	}
	c.warnLookalikes()
	c.warnExplainer()
	c.warnRPZ()
}

// findShadowed counts, for every rule, the domains on which an earlier rule
// always decides first: same domain, covering names, types and clients.
func (c *compiler) findShadowed() {
	t := c.p.table
	for off := range t.more {
		var seen []ref
		t.refs(off, func(x ref) bool {
			r := &c.p.rules[x.rule]
			for _, e := range seen {
				if c.covers(&c.p.rules[e.rule], e.flags, r, x.flags) {
					c.shadowed[x.rule]++
					c.shadower[x.rule] = int(e.rule)
					break
				}
			}
			seen = append(seen, x)
			return true
		})
	}
}

// covers reports whether rule a (with flags fa) applies wherever rule b
// (with flags fb) does.
func (c *compiler) covers(a *Rule, fa uint8, b *Rule, fb uint8) bool {
	if fb&^fa != 0 || !a.types.covers(&b.types) {
		return false
	}
	if len(a.Clients) == 0 {
		return true
	}
	if len(b.Clients) == 0 {
		return false
	}
	for _, g := range b.Clients {
		found := false
		for _, h := range a.Clients {
			found = found || g == h
		}
		if !found {
			return false
		}
	}
	return true
}
