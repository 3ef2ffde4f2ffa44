//go:build !linux

package tenants

import "testing"

// noInotify does nothing: Watch rescans only off Linux.
func noInotify(*testing.T) {}
