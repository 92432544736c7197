package rotation

// WithCrash returns a Runner like r whose Crash hook is crash.
func WithCrash(r *Runner, crash func(string) error) *Runner {
	o := r.o
	o.Crash = crash
	return New(o)
}

// WithPasser returns a Runner like r whose passes go through wrap.
func WithPasser(r *Runner, wrap func(Passer) Passer) *Runner {
	o := r.o
	o.Passer = wrap(o.Passer)
	return New(o)
}
