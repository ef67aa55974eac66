package discover

import "time"

// SetTimeout replaces DefaultTimeout for the calls that follow and
// returns a func that puts it back. Only tests that do not run in
// parallel may call it.
func SetTimeout(d time.Duration) (restore func()) {
	old := timeout
	timeout = d
	return func() { timeout = old }
}
