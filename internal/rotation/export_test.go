package rotation

// WithCrash returns a Runner like r whose Crash hook is crash.
func WithCrash(r *Runner, crash func(string) error) *Runner {
	o := r.o
	o.Crash = crash
	return New(o)
}
