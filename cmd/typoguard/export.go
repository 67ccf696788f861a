package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/typoguard/typoguard/explainer"
	"github.com/typoguard/typoguard/policy"
	"github.com/typoguard/typoguard/resolver"
)

// exportFormats are the forms export writes.
var exportFormats = []string{"rpz", "postfix", "hosts", "plain"}

// defaultRPZZone names the zone of an export when the policy has no rpz.zone.
const defaultRPZZone = "rpz.typoguard.internal."

type exportFlagValues struct {
	config, format, out, zone *string
	widen                     *bool
	max                       *int
}

func exportFlags(fs *flag.FlagSet) exportFlagValues {
	return exportFlagValues{
		config: configFlag(fs),
		format: fs.String("format", "", "the `FORMAT`: "+strings.Join(exportFormats, ", ")),
		out:    fs.String("o", "", "write to `FILE` (replaced whole, only once complete) instead of standard output"),
		zone:   fs.String("zone", "", "the RPZ zone's `NAME` (default: the policy's rpz.zone, else rpz.typoguard.internal)"),
		widen:  fs.Bool("widen-types", false, "export rules scoped to query types as blocking every type (default: the policy's rpz.widen_types)"),
		max:    fs.Int("max-records", policy.DefaultMaxExportRecords, "refuse to write more than `N` entries"),
	}
}

// export writes the policy's blocking decisions in one of exportFormats.
func export(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := exportFlags(fs)
	if pos, err := parseInterleaved(fs, args); err != nil {
		return 2
	} else if len(pos) > 0 || *f.config == "" || *f.format == "" {
		fmt.Fprintln(stderr, "usage: typoguard export -config FILE -format "+strings.Join(exportFormats, "|")+" [-o FILE] [-zone NAME] [-widen-types] [-max-records N]")
		return 2
	}
	if !slices.Contains(exportFormats, *f.format) {
		fmt.Fprintf(stderr, "typoguard export: unknown -format %q (want %s)\n", *f.format, strings.Join(exportFormats, ", "))
		return 2
	}
	widenSet := false
	fs.Visit(func(fl *flag.Flag) { widenSet = widenSet || fl.Name == "widen-types" })
	doc, err := makeExport(*f.config, exportOptions{widen: *f.widen, widenSet: widenSet, max: *f.max, zone: *f.zone, now: time.Now()})
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	write := func(w io.Writer) error { return doc.write(w, *f.format) }
	if *f.out == "" {
		err = write(stdout)
	} else {
		err = writeFileAtomic(*f.out, write)
	}
	if err != nil {
		fmt.Fprintf(stderr, "typoguard export: %v\n", err)
		return 1
	}
	return 0
}

// exportOptions are what makeExport needs besides the policy file.
type exportOptions struct {
	widen, widenSet bool // -widen-types, and whether it was given
	max             int
	zone            string
	now             time.Time
}

// exportDoc is one export of a policy, ready to write in any format.
type exportDoc struct {
	p      *policy.Policy
	ex     *policy.Export
	digest string
	zone   *resolver.RPZ
	at     time.Time
}

// makeExport loads the policy at path and makes its export.
func makeExport(path string, o exportOptions) (*exportDoc, error) {
	x := policy.NewExporter(o.max)
	p, digest, err := loadPolicyDigest(path, policy.Options{SkipExpired: true, ListDomain: x.ListDomain})
	if err != nil {
		return nil, err
	}
	widen := o.widen
	if !o.widenSet {
		widen = p.RPZ.WidenTypes // the default of -widen-types
	}
	ex, err := x.Export(p, widen)
	if err != nil {
		return nil, err
	}
	zone := o.zone
	if zone == "" {
		zone = p.RPZ.Zone
	}
	if zone == "" {
		zone = defaultRPZZone
	}
	return &exportDoc{p: p, ex: ex, digest: digest, at: o.now.UTC(),
		zone: resolver.NewRPZ(zone, uint32(o.now.Unix()), p, ex)}, nil
}

// write writes the export in format.
func (d *exportDoc) write(w io.Writer, format string) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	comment := "#"
	if format == "rpz" {
		comment = ";"
	}
	d.header(bw, comment, format)
	var err error
	switch format {
	case "rpz":
		err = d.zone.WriteText(bw)
	case "postfix":
		d.postfix(bw)
	case "hosts":
		d.lines(bw, func(e policy.ExportEntry) string { return "0.0.0.0 " + e.Name }, false)
	case "plain":
		d.lines(bw, func(e policy.ExportEntry) string { return e.Name }, true)
	}
	if err != nil {
		return err
	}
	return bw.Flush()
}

// header writes the comment lines that say what the export holds.
func (d *exportDoc) header(w io.Writer, c, format string) {
	p, ex := d.p, d.ex
	fmt.Fprintf(w, "%s typoguard export -format %s of %s\n", c, format, p.File)
	fmt.Fprintf(w, "%s policy input digest (SHA-256): %s\n", c, d.digest)
	fmt.Fprintf(w, "%s written %s", c, d.at.Format(time.RFC3339))
	if format == "rpz" {
		fmt.Fprintf(w, "; zone %s, SOA serial %d: the Unix time of the export, so a later export has a higher serial", d.zone.Origin, d.zone.Serial)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "%s entries: %d\n", c, len(ex.Entries))
	for _, r := range ex.ByRule {
		fmt.Fprintf(w, "%s   rule %q: %d\n", c, r.Rule, r.Entries)
	}
	for _, k := range policy.Kinds() {
		if n := ex.ByKind[k]; n > 0 {
			fmt.Fprintf(w, "%s   lookalikes, %s: %d\n", c, k, n)
		}
	}
	for _, r := range ex.Widened {
		fmt.Fprintf(w, "%s widened: rule %q is scoped to query types, and exported for every type\n", c, r)
	}
	for _, l := range ex.LeftOut {
		fmt.Fprintf(w, "%s left out: rule %q, %d entries: %s\n", c, l.Rule, l.Entries, l.Why)
	}
	if format == "rpz" && d.zone.Skipped > 0 {
		fmt.Fprintf(w, "%s left out: %d entries of action refuse: RPZ has no REFUSED answer\n", c, d.zone.Skipped)
	}
	if n := d.formatSkips(format); n != "" {
		fmt.Fprintf(w, "%s left out: %s\n", c, n)
	}
	for _, u := range ex.Unseen {
		fmt.Fprintf(w, "%s not seen by a consumer (typoguard matches these by rule, not list): %s\n", c, u)
	}
}

// formatSkips says which entries a format cannot hold, or "".
func (d *exportDoc) formatSkips(format string) string {
	below, allow := 0, 0
	for _, e := range d.ex.Entries {
		switch {
		case e.Action == policy.ActionAllow:
			allow++
		case e.Below:
			below++
		}
	}
	switch {
	case format == "hosts" && below+allow > 0:
		return fmt.Sprintf("%d entries for the names under a domain and %d exceptions: a hosts file has neither", below, allow)
	case format == "plain" && allow > 0:
		return fmt.Sprintf("%d exceptions: a plain list has none", allow)
	}
	return ""
}

// lines writes one line per blocked name; with wildcards, a domain and
// the names under it as the domain alone, and only the names under it as
// "*.domain" (typoguard's own list syntax), else such entries are left out.
func (d *exportDoc) lines(w io.Writer, line func(policy.ExportEntry) string, wildcards bool) {
	es := d.ex.Entries
	for i := 0; i < len(es); i++ {
		e := es[i]
		if e.Action == policy.ActionAllow {
			continue
		}
		if e.Below {
			if wildcards {
				fmt.Fprintln(w, "*."+line(e))
			}
			continue
		}
		fmt.Fprintln(w, line(e))
		if i+1 < len(es) && es[i+1].Name == e.Name && es[i+1].Below && sameDecision(es[i+1], e) {
			i++ // "name" stands for the names under it too
		}
	}
}

// sameDecision reports whether two entries answer alike.
func sameDecision(a, b policy.ExportEntry) bool { return a.Action == b.Action && a.Rule == b.Rule }

// postfix writes an access(5) table for check_recipient_access: each
// domain as "name" and ".name" (Postfix matches subdomains through the
// first when parent_domain_matches_subdomains lists smtpd_access_maps, as
// by default, and through the second otherwise), its value REJECT with the
// explainer's status and text, or DUNNO for an exception, which stops the
// search at it.
func (d *exportDoc) postfix(w io.Writer) {
	for _, e := range d.ex.Entries {
		value := "DUNNO"
		if e.Action != policy.ActionAllow {
			r := explainer.Refuse(d.p, netip.Addr{}, "postmaster@"+e.Name)
			value = "REJECT " + r.Status() + " " + r.Text
		}
		if e.Below {
			fmt.Fprintf(w, ".%s %s\n", e.Name, value)
		} else {
			fmt.Fprintf(w, "%s %s\n", e.Name, value)
		}
	}
}

// writeFileAtomic writes path through write, to a temporary file beside
// it that replaces path only once it is complete.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
