package faults_test

// Vault behind the fault proxy: `rotator once` against a Vault that answers
// 500 or 503, resets connections, never answers, or answers late; for every
// request, for the KV reads only, or for one secret path only.

import (
	"strings"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/vault"
	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

// The Vault client's per-request timeout is vault.DefaultTimeout (10s): the
// configuration does not expose it (cmd/rotator and internal/daemon leave
// vault.Options.Timeout zero). The delay that exceeds it is this much longer.
const beyondVaultTimeout = vault.DefaultTimeout + 2*time.Second

func TestVaultProxyFaultsFailEveryIntegrationThenRecover(t *testing.T) {
	vs := vaulttest.Require(t, vaultSrv)
	type tc struct {
		name  string
		rules func(f *fixture) []rule
		mode  mode
		want  []string // each in every failed integration's reason; "x|y": x or y
	}
	all := func(m mode) func(*fixture) []rule {
		return func(*fixture) []rule { return []rule{{mode: m}} }
	}
	reads := func(m mode, d time.Duration) func(*fixture) []rule {
		return func(f *fixture) []rule {
			return []rule{{prefix: "/v1/secret/data/" + f.prefix + "/", mode: m, delay: d}}
		}
	}
	cases := []tc{
		// The two slow ones first, so that they run side by side (each
		// waits out the Vault client's timeout).
		{"drop every request (login never answered)", all(modeDrop), modeDrop,
			[]string{"log in to vault", "vault unreachable", "no answer in time"}},
		{"reads answered after the client timeout", reads(modeDelay, beyondVaultTimeout), modeDelay,
			[]string{"read secret/", "vault unreachable", "no answer in time"}},
		{"500 on every request", all(mode500), mode500,
			[]string{"log in to vault", "HTTP 500", "internal error injected by the fault proxy"}},
		{"500 on the reads", reads(mode500, 0), mode500,
			[]string{"read secret/", "HTTP 500", "internal error injected by the fault proxy"}},
		// A 503 whose body says nothing of a seal is not a seal.
		{"503 on every request", all(mode503), mode503,
			[]string{"log in to vault", "HTTP 503", "upstream unavailable"}},
		{"503 on the reads", reads(mode503, 0), mode503,
			[]string{"read secret/", "HTTP 503", "upstream unavailable"}},
		{"reset every connection", all(modeReset), modeReset,
			[]string{"log in to vault", "vault unreachable"}},
		{"reset the reads", reads(modeReset, 0), modeReset,
			[]string{"read secret/", "vault unreachable"}},
		// A partial read: the answer's head and half its JSON body.
		{"truncate the answers of the reads", reads(modeTruncate, 0), modeTruncate,
			[]string{"read secret/", "EOF"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, vs)
			f.add([3]string{"a", "11", "a"}, [3]string{"b", "12", "b"}, [3]string{"c", "13", "c"})
			p := startProxy(t, vs.Addr)
			config := f.config(cfg{vaultAddr: p.URL})

			p.set(c.rules(f)...)
			r := f.once(config)
			if r.code != 1 {
				t.Errorf("with the fault: got exit %d, want 1\n%s", r.code, r.show())
			}
			for _, in := range f.integs {
				l := line(r.stdout, in.name)
				if !strings.Contains(l, "failed: ") {
					t.Errorf("%s with the fault: got %q, want failed", in.name, redact(l))
					continue
				}
				for _, w := range c.want {
					if !containsAny(l, strings.Split(w, "|")...) {
						t.Errorf("%s with the fault: reason %q does not say %q", in.name, redact(l), w)
					}
				}
			}
			t.Logf("reason given: %s", redact(reasonOf(line(r.stdout, "a"))))
			if n := f.hood.Count(""); n != 0 {
				t.Errorf("with the fault: Hood got %d requests, want none (nothing to push from a failed read)", n)
			}
			if p.hit(c.mode) == 0 {
				t.Errorf("the proxy never applied %v", c.mode)
			}

			// Back to pass-through: the next pass pushes everything.
			p.set()
			f.hood.Reset()
			r = f.once(config)
			if r.code != 0 {
				t.Fatalf("after the fault: got exit %d, want 0\n%s", r.code, r.show())
			}
			for _, in := range f.integs {
				if l := line(r.stdout, in.name); !strings.Contains(l, "pushed") {
					t.Errorf("%s after the fault: got %q, want pushed", in.name, redact(l))
				}
			}
			f.expectPushed("a", "b", "c")
			f.checkFiles()
		})
	}
}

// A slow Vault, but within the client's timeout: the pass just takes longer.
func TestVaultProxySlowWithinTimeoutPushes(t *testing.T) {
	vs := vaulttest.Require(t, vaultSrv)
	f := newFixture(t, vs)
	f.add([3]string{"a", "21", "a"}, [3]string{"b", "22", "b"})
	p := startProxy(t, vs.Addr)
	p.set(rule{mode: modeDelay, delay: time.Second}) // the login and every read
	r := f.once(f.config(cfg{vaultAddr: p.URL}))
	if r.code != 0 {
		t.Fatalf("slow Vault: got exit %d, want 0\n%s", r.code, r.show())
	}
	if p.hit(modeDelay) < 3 {
		t.Errorf("delayed requests: got %d, want the login and both reads", p.hit(modeDelay))
	}
	f.expectPushed("a", "b")
	f.checkFiles()
}

// The proxy fails the requests of one secret path only: the integrations
// that read it fail, naming it; the others push; the next pass pushes the
// failed ones only.
func TestVaultProxyOnePathFails(t *testing.T) {
	vs := vaulttest.Require(t, vaultSrv)
	for _, m := range []mode{mode500, mode503, modeReset, modeTruncate} {
		t.Run(m.String(), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, vs)
			// b1 and b2 share the failing path.
			f.add([3]string{"a", "31", "a"}, [3]string{"b1", "32", "b"}, [3]string{"b2", "33", "b"}, [3]string{"c", "34", "c"})
			p := startProxy(t, vs.Addr)
			config := f.config(cfg{vaultAddr: p.URL})
			bad := "secret/" + f.prefix + "/b"
			p.set(rule{prefix: "/v1/secret/data/" + f.prefix + "/b", mode: m})

			r := f.once(config)
			if r.code != 1 {
				t.Errorf("one path failing: got exit %d, want 1\n%s", r.code, r.show())
			}
			for _, n := range []string{"b1", "b2"} {
				if l := line(r.stdout, n); !strings.Contains(l, "failed: read "+bad+" ") {
					t.Errorf("%s: got %q, want failed naming %s", n, redact(l), bad)
				}
			}
			for _, n := range []string{"a", "c"} {
				if l := line(r.stdout, n); !strings.Contains(l, "pushed") {
					t.Errorf("%s: got %q, want pushed (its path is fine)", n, redact(l))
				}
			}
			t.Logf("reason given: %s", redact(reasonOf(line(r.stdout, "b1"))))
			f.expectPushed("a", "c")
			if p.hit(m) == 0 {
				t.Errorf("the proxy never applied %v", m)
			}

			p.set()
			f.hood.Reset()
			r = f.once(config)
			if r.code != 0 {
				t.Fatalf("after the fault: got exit %d, want 0\n%s", r.code, r.show())
			}
			for n, want := range map[string]string{"a": "unchanged", "b1": "pushed", "b2": "pushed", "c": "unchanged"} {
				if l := line(r.stdout, n); !strings.Contains(l, want) {
					t.Errorf("%s after the fault: got %q, want %s", n, redact(l), want)
				}
			}
			f.expectPushed("b1", "b2")
			f.checkFiles()
		})
	}
}

// The Hood token's own Vault path fails: nothing can be pushed, every
// integration says why, and Hood is never called.
func TestVaultProxyHoodTokenPathFails(t *testing.T) {
	vs := vaulttest.Require(t, vaultSrv)
	f := newFixture(t, vs)
	f.add([3]string{"a", "41", "a"}, [3]string{"b", "42", "b"})
	p := startProxy(t, vs.Addr)
	config := f.config(cfg{vaultAddr: p.URL, hoodFromVault: true})
	p.set(rule{prefix: "/v1/secret/data/" + f.prefix + "/hood", mode: mode500})
	r := f.once(config)
	if r.code != 1 {
		t.Errorf("Hood token unreadable: got exit %d, want 1\n%s", r.code, r.show())
	}
	for _, in := range f.integs {
		if l := line(r.stdout, in.name); !strings.Contains(l, "failed: read Hood token: read secret/"+f.prefix+"/hood") || !strings.Contains(l, "HTTP 500") {
			t.Errorf("%s: got %q, want failed: read Hood token naming its path and the 500", in.name, redact(l))
		}
	}
	if n := f.hood.Count(""); n != 0 {
		t.Errorf("Hood got %d requests without a token, want none", n)
	}
	p.set()
	r = f.once(config)
	if r.code != 0 {
		t.Fatalf("after the fault: got exit %d, want 0\n%s", r.code, r.show())
	}
	f.expectPushed("a", "b")
	f.checkFiles()
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// reasonOf is the outcome part of a summary line.
func reasonOf(l string) string {
	if _, after, ok := strings.Cut(l, "failed: "); ok {
		return after
	}
	return l
}
