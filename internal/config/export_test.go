package config

// SetHostname replaces the host name lookup behind the default of
// ha.identity until the returned func restores it.
func SetHostname(f func() (string, error)) (restore func()) {
	old := hostname
	hostname = f
	return func() { hostname = old }
}
