//go:build !linux

package tokens

import "errors"

// watchDir is not available off Linux: Watch polls only.
func (s *FileSource) watchDir() (stop func(), err error) {
	return nil, errors.New("tokens: inotify is only available on Linux")
}
