package tokens

import (
	"log/slog"
	"strings"
)

// WatchSecrets builds a value from secrets, each given literally or as a
// file, once rather than at each use: the files are watched as Watch does
// and the value built again when one of them changes, so that a rotated
// Kubernetes Secret is used without a restart. build gets the secrets'
// values in order, a file's with its surrounding white space trimmed (as
// Read gives it); its error must not quote them. With no file among
// secrets the value is a constant.
func WatchSecrets[T any](what string, secrets []Secret, build func(values []string) (T, error), log *slog.Logger) (*Watched[T], error) {
	var paths []string
	for _, s := range secrets {
		if s.path != "" {
			paths = append(paths, s.path)
		}
	}
	return Watch(what, paths, func(files [][]byte, _ *T) (T, error) {
		values := make([]string, len(secrets))
		for i, s := range secrets {
			if s.path == "" {
				values[i] = s.value
				continue
			}
			values[i], files = strings.TrimSpace(string(files[0])), files[1:]
		}
		return build(values)
	}, log)
}
