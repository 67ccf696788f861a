package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/typoguard/typoguard/policy"
)

// watchDebounce is how long the watched files must be quiet before a change
// triggers a reload: editors and the kubelet write in several steps.
const watchDebounce = 300 * time.Millisecond

// policyWatch reports changes to a policy file and its list files. It
// watches their directories, not the files: editors replace a file by
// renaming a new one over it, and Kubernetes updates a mounted ConfigMap by
// swapping a "..data" symlink beside it; a watch on the file itself would
// lose both.
type policyWatch struct {
	log     *slog.Logger
	path    string
	w       *fsnotify.Watcher
	changed chan struct{}

	mu    sync.Mutex      // guards files
	files map[string]bool // cleaned paths whose changes count
}

// watchPolicy starts watching the policy file at path and the lists of p.
func watchPolicy(ctx context.Context, log *slog.Logger, path string, p *policy.Policy) (*policyWatch, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	pw := &policyWatch{log: log, path: path, w: w, changed: make(chan struct{}, 1)}
	if err := pw.follow(p); err != nil {
		w.Close()
		return nil, err
	}
	go pw.run(ctx)
	return pw, nil
}

// follow makes the watch cover the files a (re)loaded policy reads.
func (pw *policyWatch) follow(p *policy.Policy) error {
	files := map[string]bool{filepath.Clean(pw.path): true}
	for _, f := range policyFiles(p)[1:] {
		files[filepath.Clean(f)] = true
	}
	pw.mu.Lock()
	pw.files = files
	pw.mu.Unlock()
	for f := range files {
		dir := filepath.Dir(f)
		if err := pw.w.Add(dir); err != nil {
			return fmt.Errorf("watch %s: %w", dir, err)
		}
	}
	return nil
}

// counts reports whether an event on name may change the policy: one of
// its files, or a kubelet "..data"-style symlink beside them.
func (pw *policyWatch) counts(name string) bool {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	if pw.files[filepath.Clean(name)] {
		return true
	}
	if !strings.HasPrefix(filepath.Base(name), "..") {
		return false
	}
	dir := filepath.Dir(name)
	for f := range pw.files {
		if filepath.Dir(f) == dir {
			return true
		}
	}
	return false
}

func (pw *policyWatch) run(ctx context.Context) {
	defer pw.w.Close()
	var quiet <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-pw.w.Events:
			if !ok {
				return
			}
			if pw.counts(ev.Name) {
				pw.log.Debug("policy file changed", "event", ev.String())
				quiet = time.After(watchDebounce)
			}
		case err, ok := <-pw.w.Errors:
			if !ok {
				return
			}
			pw.log.Warn("watching the policy files", "err", err)
		case <-quiet:
			quiet = nil
			select {
			case pw.changed <- struct{}{}:
			default: // a reload is already pending
			}
		}
	}
}

// policyFiles lists the files a policy was read from: the policy file, its
// list files, and its upstream_ca_file.
func policyFiles(p *policy.Policy) []string {
	files := []string{p.File}
	for _, r := range p.Rules() {
		for _, l := range r.DomainsFrom {
			files = append(files, policy.ListPath(p.File, l))
		}
	}
	for _, k := range p.RPZ.TSIG {
		files = append(files, policy.ListPath(p.File, k.SecretFile))
	}
	if p.UpstreamCAFile != "" {
		files = append(files, policy.ListPath(p.File, p.UpstreamCAFile))
	}
	return files
}
