package main

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/typoguard/typoguard/resolver/resolvertest"
)

// TestHelpShowsEveryFlag holds `typoguard help COMMAND` to the flags the
// command parses: each is listed with its argument and text.
func TestHelpShowsEveryFlag(t *testing.T) {
	out, _, code := runBinary(t, "help")
	if code != 0 {
		t.Fatalf("help: exit %d", code)
	}
	for _, c := range commands {
		if !strings.Contains(out, "  typoguard "+c.name) {
			t.Errorf("help lacks %s:\n%s", c.name, out)
		}
		got, errOut, code := runBinary(t, "help", c.name)
		if code != 0 || !strings.HasPrefix(got, "usage: typoguard "+c.name) {
			t.Errorf("help %s: exit %d\n%s%s", c.name, code, got, errOut)
		}
		for _, f := range c.flagsOf() {
			arg, usage := flag.UnquoteUsage(f)
			if !strings.Contains(got, strings.TrimSpace("  -"+f.Name+" "+arg)+"\n      "+usage) {
				t.Errorf("help %s lacks -%s:\n%s", c.name, f.Name, got)
			}
		}
	}
	if _, _, code := runBinary(t, "help", "nonesuch"); code != 2 {
		t.Errorf("help nonesuch: exit %d, want 2", code)
	}
	// A flag the help lists is one the command takes.
	if _, errOut, code := runBinary(t, "test", "-config", "testdata/example.yaml", "-server"); code != 2 || !strings.Contains(errOut, "flag needs an argument: -server") {
		t.Errorf("test -server without an address: exit %d, %q", code, errOut)
	}
}

// TestBashCompletion sources the bash completion and completes command
// names, each command's flags, and a file name after -config.
func TestBashCompletion(t *testing.T) {
	bash := resolvertest.NeedTool(t, "bash", "bash")
	script, _, code := runBinary(t, "completion", "bash")
	if code != 0 {
		t.Fatal("completion bash failed")
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "completion.bash")
	if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	policyFile := filepath.Join(dir, "policy-one.yaml")
	if err := os.WriteFile(policyFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	complete := func(words ...string) string {
		t.Helper()
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		src := "source " + file + "\nCOMP_WORDS=(" + strings.Join(quoted, " ") + ")\nCOMP_CWORD=" +
			strconv.Itoa(len(words)-1) + "\n_typoguard\necho \"${COMPREPLY[*]}\"\n"
		out, err := exec.Command(bash, "-c", src).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"typoguard", "ch"}, "check"},
		{[]string{"typoguard", "lo"}, "lookalikes"},
		{[]string{"typoguard", "test", "-"}, "-config -server -v"},
		{[]string{"typoguard", "explain", "-c"}, "-client -config"},
		{[]string{"typoguard", "check", "-config", filepath.Join(dir, "policy-o")}, policyFile},
		{[]string{"typoguard", "completion", "z"}, "zsh"},
		{[]string{"typoguard", "help", "se"}, "serve"},
	} {
		if got := complete(tc.words...); got != tc.want {
			t.Errorf("complete %q = %q, want %q", tc.words, got, tc.want)
		}
	}
}

// TestZshCompletion checks the zsh completion parses, and names every
// command and flag.
func TestZshCompletion(t *testing.T) {
	zsh := resolvertest.NeedTool(t, "zsh", "zsh")
	script, _, code := runBinary(t, "completion", "zsh")
	if code != 0 {
		t.Fatal("completion zsh failed")
	}
	file := filepath.Join(t.TempDir(), "_typoguard")
	if err := os.WriteFile(file, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(zsh, "-n", file).CombinedOutput(); err != nil {
		t.Fatalf("zsh -n: %v\n%s", err, out)
	}
	for _, c := range commands {
		if !strings.Contains(script, "'"+c.name+":") {
			t.Errorf("zsh completion lacks the command %s", c.name)
		}
		for _, f := range c.flagsOf() {
			if !strings.Contains(script, "'-"+f.Name+"[") {
				t.Errorf("zsh completion lacks %s -%s", c.name, f.Name)
			}
		}
	}
}

// TestManPage renders typoguard(1) with groff, warnings on: it must render
// without one and name every command and flag.
func TestManPage(t *testing.T) {
	groff := resolvertest.NeedTool(t, "groff", "groff-base")
	page, _, code := runBinary(t, "man")
	if code != 0 || !strings.HasPrefix(page, ".TH TYPOGUARD 1 ") {
		t.Fatalf("man: exit %d\n%s", code, page)
	}
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww")
	cmd.Stdin = strings.NewReader(page)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, stderr.String())
	}
	// groff -Tutf8 emboldens by overstriking; read the text alone.
	text := string(out)
	for strings.Contains(text, "\b") {
		i := strings.Index(text, "\b")
		text = text[:i-1] + text[i+1:]
	}
	text = strings.ReplaceAll(text, "\u2010", "-")
	for _, c := range commands {
		if !strings.Contains(text, "typoguard "+c.name) {
			t.Errorf("the man page lacks typoguard %s", c.name)
		}
		for _, f := range c.flagsOf() {
			if !strings.Contains(text, "-"+f.Name) {
				t.Errorf("the man page lacks %s -%s", c.name, f.Name)
			}
		}
	}
}

// TestMakeInstall installs into a staging directory: the binary, the man
// page and both completions, where the README says.
func TestMakeInstall(t *testing.T) {
	makePath := resolvertest.NeedTool(t, "make", "make")
	dest := t.TempDir()
	cmd := exec.Command(makePath, "-C", filepath.Join("..", ".."), "install", "DESTDIR="+dest, "PREFIX=/usr")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range []string{"usr/bin/typoguard", "usr/share/man/man1/typoguard.1", "usr/share/bash-completion/completions/typoguard", "usr/share/zsh/site-functions/_typoguard"} {
		st, err := os.Stat(filepath.Join(dest, f))
		if err != nil || st.Size() == 0 {
			t.Errorf("make install did not write %s: %v", f, err)
		}
	}
	out, err := exec.Command(filepath.Join(dest, "usr/bin/typoguard"), "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "typoguard ") {
		t.Errorf("installed typoguard version: %v %q", err, out)
	}
}
