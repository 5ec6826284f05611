package dial

import "time"

// SetReresolveEvery sets how often dns:/// names are resolved again, for
// the connections made until restore is called.
func SetReresolveEvery(d time.Duration) (restore func()) {
	old := reresolveEvery
	reresolveEvery = d
	return func() { reresolveEvery = old }
}
