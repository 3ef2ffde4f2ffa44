package shared

import "time"

// SetNow makes s tell the time with now instead of time.Now. The tests of a
// stored token's age need it: they use a real Redis, whose sockets
// testing/synctest cannot fake.
func SetNow(s *Source, now func() time.Time) { s.now = now }
