//go:build !linux

package tenants

import "context"

// watch rescans only: inotify is Linux's.
func (d *Dir) watch(ctx context.Context) error {
	d.log.Info("tenants directory: no inotify here: rescanning only", "dir", d.c.Dir, "every", d.c.Rescan.String())
	return d.poll(ctx)
}
