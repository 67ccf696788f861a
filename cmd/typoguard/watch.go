package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchDebounce is how long the policy's directory must be quiet before a
// change triggers a reload: editors and kubelet write in several steps.
const watchDebounce = 300 * time.Millisecond

// watchPolicy signals changed when anything in the policy file's directory
// changes. It watches the directory, not the file: editors replace a file by
// renaming a new one over it, and Kubernetes updates a mounted ConfigMap by
// swapping a symlink beside it; a watch on the file itself would lose both.
func watchPolicy(ctx context.Context, log *slog.Logger, path string, changed chan<- struct{}) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	dir := filepath.Dir(path)
	if err := w.Add(dir); err != nil {
		w.Close()
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	go func() {
		defer w.Close()
		var quiet <-chan time.Time
		for {
			select {
			case <-ctx.Done():
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				log.Debug("policy directory changed", "event", ev.String())
				quiet = time.After(watchDebounce)
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.Warn("watching the policy directory", "err", err)
			case <-quiet:
				quiet = nil
				select {
				case changed <- struct{}{}:
				default: // a reload is already pending
				}
			}
		}
	}()
	return nil
}
