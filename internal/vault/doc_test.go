package vault_test

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/vault"
	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

// leaseDoc is a document as the HA records hold them.
type leaseDoc struct {
	Holder  string `json:"holder"`
	Counter int    `json:"counter"`
	Secret  string `json:"secret,omitempty"`
}

// rootClient is a client of the harness logged in with s's root token.
func rootClient(t *testing.T, h *harness, s *vaulttest.Server) *vault.Client {
	t.Helper()
	h.secret(s.RootToken)
	return h.client(tokenCfg(s.Addr, writeFile(t, "token", s.RootToken)), nil)
}

// readDoc reads the document at secret/path, failing the test on error.
func readDoc(t *testing.T, h *harness, c *vault.Client, path string) (leaseDoc, int, bool) {
	t.Helper()
	var d leaseDoc
	v, found, err := c.ReadDoc(t.Context(), "secret", path, &d)
	if err != nil {
		t.Fatalf("ReadDoc %s: %v", path, h.seen(err))
	}
	return d, v, found
}

func TestWriteDocCheckAndSet(t *testing.T) {
	s := vaulttest.Require(t, srv)
	h := newHarness(t)
	c := rootClient(t, h, s)
	p := uniq("doc-cas") + "/lease"
	conflict := func(cas int) string {
		if cas == 0 {
			return "write secret/" + p + " (kv v2): check-and-set conflict: expected no secret (check-and-set version 0), but it exists"
		}
		return fmt.Sprintf("write secret/%s (kv v2): check-and-set conflict: expected version %d is not the current version", p, cas)
	}

	// Each step runs on the state the steps before it left.
	steps := []struct {
		name        string
		doc         leaseDoc
		cas         int
		wantVersion int    // 0: a conflict
		wantErr     string // the conflict's message
		wantDoc     leaseDoc
		wantCurrent int
	}{
		{"create with cas 0", leaseDoc{Holder: "a", Counter: 1}, 0, 1, "", leaseDoc{Holder: "a", Counter: 1}, 1},
		{"second create with cas 0", leaseDoc{Holder: "b", Counter: 9}, 0, 0, conflict(0), leaseDoc{Holder: "a", Counter: 1}, 1},
		{"update with the current version", leaseDoc{Holder: "b", Counter: 2}, 1, 2, "", leaseDoc{Holder: "b", Counter: 2}, 2},
		{"stale version", leaseDoc{Holder: "c", Counter: 9}, 1, 0, conflict(1), leaseDoc{Holder: "b", Counter: 2}, 2},
		{"version not written yet", leaseDoc{Holder: "c", Counter: 9}, 7, 0, conflict(7), leaseDoc{Holder: "b", Counter: 2}, 2},
		{"update again", leaseDoc{Holder: "", Counter: 3}, 2, 3, "", leaseDoc{Holder: "", Counter: 3}, 3},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			okBefore, errBefore := h.obs.count("write/ok"), h.obs.count("write/error")
			v, err := c.WriteDoc(t.Context(), "secret", p, st.doc, st.cas)
			h.note(err)
			if st.wantVersion == 0 {
				e := wantKind(t, err, vault.KindConflict, vault.ErrConflict)
				if e.Op != vault.OpWrite || e.Mount != "secret" || e.Path != p {
					t.Errorf("op, mount, path: got %q, %q, %q; want %q, secret, %q", e.Op, e.Mount, e.Path, vault.OpWrite, p)
				}
				if got := err.Error(); got != st.wantErr {
					t.Errorf("error: got %q, want %q", got, st.wantErr)
				}
				if errors.Is(err, vault.ErrPermissionDenied) || errors.Is(err, vault.ErrNotFound) {
					t.Error("errors.Is: a conflict matches another kind's sentinel, want only ErrConflict")
				}
				if v != 0 {
					t.Errorf("version of a conflict: got %d, want 0", v)
				}
				if got := h.obs.count("write/error") - errBefore; got != 1 {
					t.Errorf("observed write errors: got %d, want 1", got)
				}
			} else {
				if err != nil {
					t.Fatalf("WriteDoc: got %v, want no error", err)
				}
				if v != st.wantVersion {
					t.Errorf("version written: got %d, want %d", v, st.wantVersion)
				}
				if got := h.obs.count("write/ok") - okBefore; got != 1 {
					t.Errorf("observed successful writes: got %d, want 1", got)
				}
			}
			d, v, found := readDoc(t, h, c, p)
			if !found || v != st.wantCurrent || d != st.wantDoc {
				t.Errorf("stored: got %+v version %d found %v, want %+v version %d found true", d, v, found, st.wantDoc, st.wantCurrent)
			}
		})
	}
}

func TestReadDoc(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	h := newHarness(t)
	c := rootClient(t, h, s)
	p := uniq("doc-read")
	for range 3 {
		for _, name := range []string{"deleted", "destroyed", "current"} {
			if _, err := s.PutKV(ctx, "secret", p+"/"+name, map[string]any{"holder": name, "counter": 7}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.DeleteKV(ctx, "secret", p+"/deleted"); err != nil { // KV v2 delete: soft delete of version 3
		t.Fatal(err)
	}
	if err := s.DestroyKV(ctx, "secret", p+"/destroyed", 3); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutKV(ctx, "secret", p+"/empty", map[string]any{}); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		mount, path string
		wantVersion int
		wantFound   bool
		wantDoc     leaseDoc
	}{
		{"missing", "secret", p + "/missing", 0, false, leaseDoc{Holder: "untouched"}},
		{"current version", "secret", p + "/current", 3, true, leaseDoc{Holder: "current", Counter: 7}},
		{"slashes trimmed", "/secret/", "/" + p + "/current/", 3, true, leaseDoc{Holder: "current", Counter: 7}},
		{"current version deleted", "secret", p + "/deleted", 3, false, leaseDoc{Holder: "untouched"}},
		{"current version destroyed", "secret", p + "/destroyed", 3, false, leaseDoc{Holder: "untouched"}},
		{"empty object", "secret", p + "/empty", 1, true, leaseDoc{Holder: "untouched"}},
		{"missing mount (root token: a 404, as a missing path)", "no-such-mount", "x", 0, false, leaseDoc{Holder: "untouched"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := leaseDoc{Holder: "untouched"}
			okBefore, errBefore := h.obs.count("read/ok"), h.obs.count("read/error")
			v, found, err := c.ReadDoc(ctx, tt.mount, tt.path, &d)
			if err != nil {
				t.Fatalf("ReadDoc: got %v, want no error", h.seen(err))
			}
			if v != tt.wantVersion || found != tt.wantFound {
				t.Errorf("version, found: got %d, %v; want %d, %v", v, found, tt.wantVersion, tt.wantFound)
			}
			if d != tt.wantDoc {
				t.Errorf("document: got %+v, want %+v", d, tt.wantDoc)
			}
			// A request is observed once; a document not found (a 404)
			// is an expected answer, not an error.
			wantOK, wantErr := 1, 0
			if gotOK, gotErr := h.obs.count("read/ok")-okBefore, h.obs.count("read/error")-errBefore; gotOK != wantOK || gotErr != wantErr {
				t.Errorf("observed read ok, error: got %d, %d; want %d, %d", gotOK, gotErr, wantOK, wantErr)
			}
		})
	}

	// After a deleted or destroyed current version, a write with cas = that
	// version succeeds, and cas 0 does not.
	for _, name := range []string{"deleted", "destroyed"} {
		t.Run("write after "+name, func(t *testing.T) {
			path := p + "/" + name
			_, err := c.WriteDoc(ctx, "secret", path, leaseDoc{Holder: "x"}, 0)
			wantKind(t, h.seen(err), vault.KindConflict, vault.ErrConflict)
			v, err := c.WriteDoc(ctx, "secret", path, leaseDoc{Holder: "new", Counter: 1}, 3)
			if err != nil || v != 4 {
				t.Fatalf("WriteDoc cas 3: got version %d, %v; want 4, no error", v, h.seen(err))
			}
			d, v, found := readDoc(t, h, c, path)
			if want := (leaseDoc{Holder: "new", Counter: 1}); !found || v != 4 || d != want {
				t.Errorf("after the write: got %+v version %d found %v, want %+v version 4 found true", d, v, found, want)
			}
		})
	}
}

func TestCurrentVersion(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	h := newHarness(t)
	c := rootClient(t, h, s)
	p := uniq("doc-meta")
	for i := range 4 {
		if v, err := c.WriteDoc(ctx, "secret", p+"/app", leaseDoc{Counter: i}, i); err != nil || v != i+1 {
			t.Fatalf("write %d: got version %d, %v; want %d", i, v, h.seen(err), i+1)
		}
	}
	if _, err := s.PutKV(ctx, "secret", p+"/deleted", map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutKV(ctx, "secret", p+"/deleted", map[string]any{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteKV(ctx, "secret", p+"/deleted"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name        string
		mount, path string
		want        int
		wantErr     string // "": no error; else the message of a KindNotFound
	}{
		{"after four writes", "secret", p + "/app", 4, ""},
		{"slashes trimmed", "/secret/", "/" + p + "/app/", 4, ""},
		{"current version deleted", "secret", p + "/deleted", 2, ""},
		{"missing", "secret", p + "/missing", 0, "read metadata of secret/" + p + "/missing (kv v2): not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			okBefore, errBefore := h.obs.count("metadata/ok"), h.obs.count("metadata/error")
			got, err := c.CurrentVersion(ctx, tt.mount, tt.path)
			h.note(err)
			if tt.wantErr != "" {
				e := wantKind(t, err, vault.KindNotFound, vault.ErrNotFound)
				if e.Op != vault.OpMetadata {
					t.Errorf("op: got %q, want %q", e.Op, vault.OpMetadata)
				}
				if err.Error() != tt.wantErr {
					t.Errorf("error: got %q, want %q", err, tt.wantErr)
				}
				if got := h.obs.count("metadata/error") - errBefore; got != 1 {
					t.Errorf("observed metadata errors: got %d, want 1", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("CurrentVersion: got %v, want no error", err)
			}
			if got != tt.want {
				t.Errorf("current version: got %d, want %d", got, tt.want)
			}
			if got := h.obs.count("metadata/ok") - okBefore; got != 1 {
				t.Errorf("observed metadata reads: got %d, want 1", got)
			}
		})
	}
}

// failingMarshaler fails to encode with an error that holds the sentinel.
type failingMarshaler struct{}

func (failingMarshaler) MarshalJSON() ([]byte, error) {
	return nil, errors.New("cannot encode " + sentinel)
}

func TestDocInvalid(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	h := newHarness(t)
	c := rootClient(t, h, s)
	p := uniq("doc-invalid")
	// Documents whose data do not fit leaseDoc: the values (a string where a
	// number goes, a number where a string goes) must not be quoted.
	if _, err := s.PutKV(ctx, "secret", p+"/string-counter", map[string]any{"counter": sentinel}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutKV(ctx, "secret", p+"/number-holder", map[string]any{"holder": 987654321}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutKV(ctx, "secret", p+"/map-key", map[string]any{"counts": map[string]any{sentinel: "x"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutKV(ctx, "secret", p+"/bad-time", map[string]any{"expires": sentinel}); err != nil {
		t.Fatal(err)
	}
	if err := s.EnableKV(ctx, "kv1-doc", 1); err != nil {
		t.Fatal(err)
	}
	if err := c.Login(ctx); err != nil {
		t.Fatal(h.seen(err))
	}
	var nilDoc *leaseDoc
	type timed struct {
		Expires time.Time `json:"expires"`
	}

	t.Run("ReadDoc", func(t *testing.T) {
		tests := []struct {
			name        string
			mount, path string
			out         any
			wantVersion int
			wantFound   bool
			wantErr     string
		}{
			{"empty mount", "/", "x", &leaseDoc{}, 0, false, "read x (kv v2): mount is empty"},
			{"empty path", "secret", "//", &leaseDoc{}, 0, false, "read secret (kv v2): path is empty"},
			{"nil out", "secret", "x", nil, 0, false, "read secret/x (kv v2): cannot decode into <nil>: want a non-nil pointer"},
			{"non-pointer out", "secret", "x", leaseDoc{}, 0, false, "read secret/x (kv v2): cannot decode into vault_test.leaseDoc: want a non-nil pointer"},
			{"nil pointer out", "secret", "x", nilDoc, 0, false, "read secret/x (kv v2): cannot decode into *vault_test.leaseDoc: want a non-nil pointer"},
			{"string where a number goes", "secret", p + "/string-counter", &leaseDoc{}, 1, true,
				"read secret/" + p + "/string-counter (kv v2): version 1: data does not decode into *vault_test.leaseDoc: a JSON string does not fit a int"},
			{"number where a string goes", "secret", p + "/number-holder", &leaseDoc{}, 1, true,
				"read secret/" + p + "/number-holder (kv v2): version 1: data does not decode into *vault_test.leaseDoc: a JSON number does not fit a string"},
			{"map key of the document", "secret", p + "/map-key", &struct{ Counts map[string]int }{}, 1, true,
				"read secret/" + p + "/map-key (kv v2): version 1: data does not decode into *struct { Counts map[string]int }: a JSON string does not fit a int"},
			{"time that does not parse (time.Time quotes it)", "secret", p + "/bad-time", &timed{}, 1, true,
				"read secret/" + p + "/bad-time (kv v2): version 1: data does not decode into *vault_test.timed"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := h.obs.total()
				v, found, err := c.ReadDoc(ctx, tt.mount, tt.path, tt.out)
				h.note(err)
				wantKind(t, err, vault.KindInvalid, vault.ErrInvalid)
				if err.Error() != tt.wantErr {
					t.Errorf("error: got %q, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "987654321") {
					t.Error("error quotes the document's number, want no document content")
				}
				if v != tt.wantVersion || found != tt.wantFound {
					t.Errorf("version, found: got %d, %v; want %d, %v", v, found, tt.wantVersion, tt.wantFound)
				}
				wantRequests := 0
				if tt.wantFound {
					wantRequests = 1 // the read; none for a bad argument
				}
				if got := h.obs.total() - before; got != wantRequests {
					t.Errorf("requests observed: got %d, want %d", got, wantRequests)
				}
			})
		}
	})

	t.Run("WriteDoc", func(t *testing.T) {
		tests := []struct {
			name        string
			mount, path string
			in          any
			cas         int
			wantErr     string
		}{
			{"empty mount", "", "x", leaseDoc{}, 0, "write x (kv v2): mount is empty"},
			{"empty path", "secret", "", leaseDoc{}, 0, "write secret (kv v2): path is empty"},
			{"negative cas", "secret", "x", leaseDoc{}, -1, "write secret/x (kv v2): check-and-set version -1 is negative"},
			{"nil", "secret", "x", nil, 0, "write secret/x (kv v2): a <nil> does not encode as a JSON object"},
			{"nil pointer", "secret", "x", nilDoc, 0, "write secret/x (kv v2): a *vault_test.leaseDoc does not encode as a JSON object"},
			{"array", "secret", "x", []string{sentinel}, 0, "write secret/x (kv v2): a []string does not encode as a JSON object"},
			{"string", "secret", "x", sentinel, 0, "write secret/x (kv v2): a string does not encode as a JSON object"},
			{"channel", "secret", "x", map[string]any{"k": sentinel, "c": make(chan int)}, 0,
				"write secret/x (kv v2): a map[string]interface {} does not encode as JSON: it holds a chan int"},
			{"NaN", "secret", "x", map[string]any{"k": sentinel, "n": math.NaN()}, 0,
				"write secret/x (kv v2): a map[string]interface {} does not encode as JSON: it holds an unsupported value (NaN, an infinity or a cycle)"},
			{"MarshalJSON error", "secret", "x", map[string]any{"k": failingMarshaler{}}, 0,
				"write secret/x (kv v2): a map[string]interface {} does not encode as JSON"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				before := h.obs.total()
				v, err := c.WriteDoc(ctx, tt.mount, tt.path, tt.in, tt.cas)
				h.note(err)
				wantKind(t, err, vault.KindInvalid, vault.ErrInvalid)
				if err.Error() != tt.wantErr {
					t.Errorf("error: got %q, want %q", err, tt.wantErr)
				}
				if v != 0 {
					t.Errorf("version: got %d, want 0", v)
				}
				if got := h.obs.total() - before; got != 0 {
					t.Errorf("requests observed: got %d, want 0 (no request for a bad argument)", got)
				}
			})
		}
	})

	t.Run("KV v1 mount", func(t *testing.T) {
		_, err := c.WriteDoc(ctx, "kv1-doc", p, leaseDoc{Secret: sentinel}, 0)
		h.note(err)
		wantKind(t, err, vault.KindOther, nil)
		if want := "write kv1-doc/" + p + " (kv v2): vault answered the write without a version (is kv1-doc a KV v2 engine?)"; err.Error() != want {
			t.Errorf("error: got %q, want %q", err, want)
		}
	})

	t.Run("missing mount", func(t *testing.T) {
		_, err := c.WriteDoc(ctx, "no-such-mount", p, leaseDoc{}, 0)
		h.note(err)
		wantKind(t, err, vault.KindNotFound, vault.ErrNotFound)
	})
}

func TestDocPermissionDenied(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	h := newHarness(t)
	p := uniq("doc-pd")
	if _, err := s.PutKV(ctx, "secret", p+"/rec", map[string]any{"holder": "a", "counter": 1}); err != nil {
		t.Fatal(err)
	}
	policy := uniq("doc-reader")
	if err := s.WritePolicy(ctx, policy, `path "secret/data/`+p+`/*" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	tok, err := s.CreateToken(ctx, []string{policy}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h.secret(tok)
	c := h.client(tokenCfg(s.Addr, writeFile(t, "token", tok)), nil)
	if d, v, found := readDoc(t, h, c, p+"/rec"); !found || v != 1 || d.Holder != "a" {
		t.Fatalf("ReadDoc allowed by the policy: got %+v version %d found %v, want holder a, version 1, found", d, v, found)
	}

	tests := []struct {
		name    string
		call    func() error
		wantErr string
	}{
		{"WriteDoc without update", func() error {
			_, err := c.WriteDoc(ctx, "secret", p+"/rec", leaseDoc{Holder: "b", Secret: sentinel}, 1)
			return err
		}, "write secret/" + p + "/rec (kv v2): permission denied"},
		{"WriteDoc without create", func() error {
			_, err := c.WriteDoc(ctx, "secret", p+"/new", leaseDoc{Holder: "b", Secret: sentinel}, 0)
			return err
		}, "write secret/" + p + "/new (kv v2): permission denied"},
		{"CurrentVersion without metadata read", func() error {
			_, err := c.CurrentVersion(ctx, "secret", p+"/rec")
			return err
		}, "read metadata of secret/" + p + "/rec (kv v2): permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loginsBefore := h.obs.count("login/ok") + h.obs.count("login/error")
			err := h.seen(tt.call())
			wantKind(t, err, vault.KindPermissionDenied, vault.ErrPermissionDenied)
			if err.Error() != tt.wantErr {
				t.Errorf("error: got %q, want %q", err, tt.wantErr)
			}
			if !c.Authenticated() {
				t.Error("Authenticated after a policy denial: got false, want true")
			}
			// The denial costs one token look-up (the token is valid), no login.
			if got := h.obs.count("login/ok") + h.obs.count("login/error") - loginsBefore; got != 1 {
				t.Errorf("login-side requests after the denial: got %d, want 1 (the look-up)", got)
			}
		})
	}
	if d, v, _ := readDoc(t, h, c, p+"/rec"); v != 1 || d.Holder != "a" {
		t.Errorf("after the denied writes: got %+v version %d, want holder a at version 1", d, v)
	}
}

func TestDocLogsInAgainWhenTheTokenIsRevoked(t *testing.T) {
	t.Run("approle, each call", func(t *testing.T) {
		s := vaulttest.ForTest(t) // RevokeAllTokens must not disturb other tests
		ctx := t.Context()
		h := newHarness(t)
		h.secret(s.RootToken)
		if err := s.WritePolicy(ctx, "doc-rw", `
path "secret/data/re/*"     { capabilities = ["create", "read", "update"] }
path "secret/metadata/re/*" { capabilities = ["read"] }`); err != nil {
			t.Fatal(err)
		}
		roleID, secretID, err := s.EnableAppRole(ctx, "approle", "doc", []string{"doc-rw"})
		if err != nil {
			t.Fatal(err)
		}
		h.secret(secretID)
		c := h.client(config.Vault{Address: s.Addr, Auth: config.VaultAuth{
			Method: "approle", RoleID: roleID, SecretIDFile: writeFile(t, "sid", secretID)}}, nil)
		// No explicit Login: the first call logs in.
		if _, err := c.WriteDoc(ctx, "secret", "re/rec", leaseDoc{Counter: 1, Secret: sentinel}, 0); err != nil {
			t.Fatalf("first write: %v", h.seen(err))
		}

		tests := []struct {
			op   string
			call func() error
		}{
			{vault.OpRead, func() error {
				var d leaseDoc
				v, found, err := c.ReadDoc(ctx, "secret", "re/rec", &d)
				if err == nil && (!found || v < 1 || d.Secret != sentinel) {
					err = fmt.Errorf("got version %d found %v, want the document", v, found)
				}
				return err
			}},
			{vault.OpWrite, func() error {
				v, err := c.WriteDoc(ctx, "secret", "re/rec", leaseDoc{Counter: 2}, 1)
				if err == nil && v != 2 {
					err = fmt.Errorf("got version %d, want 2", v)
				}
				return err
			}},
			{vault.OpMetadata, func() error {
				_, err := c.CurrentVersion(ctx, "secret", "re/rec")
				return err
			}},
		}
		for _, tt := range tests {
			t.Run(tt.op, func(t *testing.T) {
				if n, err := s.RevokeAllTokens(ctx); err != nil || n == 0 {
					t.Fatalf("revoke: got %d, %v; want at least one token revoked", n, err)
				}
				loginsBefore := h.obs.count("login/ok")
				if err := tt.call(); err != nil {
					t.Fatalf("%s after revocation: got %v, want the client to log in again", tt.op, h.seen(err))
				}
				if got := h.obs.count("login/ok") - loginsBefore; got != 1 {
					t.Errorf("successful logins: got %d, want 1", got)
				}
				if !c.Authenticated() {
					t.Error("Authenticated after logging in again: got false, want true")
				}
				if want := "operation=" + tt.op; !strings.Contains(h.logs.String(), want) {
					t.Errorf("log: got %q, want a line with %q", h.logs.String(), want)
				}
			})
		}
	})

	t.Run("token method re-reads token_file", func(t *testing.T) {
		s := vaulttest.Require(t, srv)
		ctx := t.Context()
		h := newHarness(t)
		p := uniq("doc-re")
		policy := uniq("doc-re")
		if err := s.WritePolicy(ctx, policy, `path "secret/data/`+p+`" { capabilities = ["create", "read", "update"] }`); err != nil {
			t.Fatal(err)
		}
		old, err := s.CreateToken(ctx, []string{policy}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := s.CreateToken(ctx, []string{policy}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		h.secret(old, fresh)
		file := writeFile(t, "token", old)
		c := h.client(tokenCfg(s.Addr, file), nil)
		if _, err := c.WriteDoc(ctx, "secret", p, leaseDoc{Counter: 1}, 0); err != nil {
			t.Fatalf("first write: %v", h.seen(err))
		}
		if err := os.WriteFile(file, []byte(fresh), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeToken(ctx, old); err != nil {
			t.Fatal(err)
		}
		v, err := c.WriteDoc(ctx, "secret", p, leaseDoc{Counter: 2}, 1)
		if err != nil || v != 2 {
			t.Fatalf("write after the revocation: got version %d, %v; want 2 with the token_file's new token", v, h.seen(err))
		}
		if got := h.obs.count("write/ok"); got != 2 {
			t.Errorf("observed successful writes: got %d, want 2", got)
		}
		if got := h.obs.count("write/error"); got != 1 {
			t.Errorf("observed failed writes: got %d, want 1 (the 403 with the revoked token)", got)
		}
	})
}

func TestDocObserve(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	h := newHarness(t)
	c := rootClient(t, h, s)
	p := uniq("doc-obs")
	if vault.OpWrite != "write" || vault.OpMetadata != "metadata" {
		t.Errorf("OpWrite, OpMetadata: got %q, %q; want write, metadata", vault.OpWrite, vault.OpMetadata)
	}
	var d leaseDoc
	_, _, err := c.ReadDoc(ctx, "secret", p, &d) // not found
	h.note(err)
	_, err = c.WriteDoc(ctx, "secret", p, leaseDoc{Counter: 1}, 0)
	h.note(err)
	_, err = c.WriteDoc(ctx, "secret", p, leaseDoc{Counter: 1}, 0) // conflict
	h.note(err)
	_, err = c.CurrentVersion(ctx, "secret", p)
	h.note(err)
	_, err = c.CurrentVersion(ctx, "secret", p+"-missing")
	h.note(err)
	_, _, err = c.ReadDoc(ctx, "secret", p, &d)
	h.note(err)

	h.obs.mu.Lock()
	got := strings.Join(h.obs.calls, " ")
	h.obs.mu.Unlock()
	want := strings.Join([]string{
		vault.OpLogin + "/" + vault.ResultOK, // the token look-up of the first login
		vault.OpRead + "/" + vault.ResultOK,  // not found: an expected answer
		vault.OpWrite + "/" + vault.ResultOK,
		vault.OpWrite + "/" + vault.ResultError,
		vault.OpMetadata + "/" + vault.ResultOK,
		vault.OpMetadata + "/" + vault.ResultError,
		vault.OpRead + "/" + vault.ResultOK,
	}, " ")
	if got != want {
		t.Errorf("Observe calls: got %q, want %q", got, want)
	}
}

func TestDocSentinelNeverLeaks(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	h := newHarness(t) // checks every error seen and the log at the end
	c := rootClient(t, h, s)
	p := uniq("doc-leak")
	doc := leaseDoc{Holder: "a", Secret: sentinel}
	v, err := c.WriteDoc(ctx, "secret", p, doc, 0)
	if err != nil || v != 1 {
		t.Fatalf("WriteDoc: got version %d, %v; want 1", v, h.seen(err))
	}
	got, v, found := readDoc(t, h, c, p)
	if !found || v != 1 || got.Secret != sentinel {
		t.Fatalf("ReadDoc: got version %d found %v equal %v, want version 1, found, the document written", v, found, got == doc)
	}
	// Failures on the document: a conflict carrying the sentinel, reads
	// into shapes the sentinel does not fit, a denial.
	var errs []error
	_, err = c.WriteDoc(ctx, "secret", p, leaseDoc{Secret: sentinel}, 0)
	wantKind(t, h.seen(err), vault.KindConflict, vault.ErrConflict)
	errs = append(errs, err)
	for _, out := range []any{
		&struct {
			Secret int `json:"secret"`
		}{},
		&struct {
			Secret map[string]any `json:"secret"`
		}{},
		&struct {
			Secret time.Time `json:"secret"`
		}{},
	} {
		_, _, err = c.ReadDoc(ctx, "secret", p, out)
		wantKind(t, h.seen(err), vault.KindInvalid, vault.ErrInvalid)
		errs = append(errs, err)
	}

	policy := uniq("doc-leak")
	if err := s.WritePolicy(ctx, policy, `path "secret/data/`+p+`" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	tok, err := s.CreateToken(ctx, []string{policy}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	h.secret(tok)
	ro := h.client(tokenCfg(s.Addr, writeFile(t, "token", tok)), nil)
	_, err = ro.WriteDoc(ctx, "secret", p, leaseDoc{Secret: sentinel}, 1)
	wantKind(t, h.seen(err), vault.KindPermissionDenied, vault.ErrPermissionDenied)
	errs = append(errs, err)

	// Every printed form of the errors, and of what they wrap, as well.
	for _, e := range errs {
		var ve *vault.Error
		if errors.As(e, &ve) && ve.Err != nil {
			printed := fmt.Sprintf("%v %+v %#v", ve.Err, ve.Err, ve.Err)
			h.note(errors.New(printed))
		}
		printed := fmt.Sprintf("%v %+v %#v", e, e, e)
		h.note(errors.New(printed))
	}
	h.checkNoLeak()
	if strings.Contains(h.logs.String(), sentinel) {
		t.Error("log output holds the sentinel")
	}
}

func TestWriteDocConcurrentIncrements(t *testing.T) {
	s := vaulttest.Require(t, srv)
	ctx := t.Context()
	h := newHarness(t)
	p := uniq("doc-counter")
	const (
		workers    = 8
		increments = 10 // per worker
	)
	if v, err := rootClient(t, h, s).WriteDoc(ctx, "secret", p, leaseDoc{}, 0); err != nil || v != 1 {
		t.Fatalf("create: got version %d, %v; want 1", v, h.seen(err))
	}

	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		conflicts int
		errs      []error
	)
	for w := range workers {
		c := rootClient(t, h, s) // one client per worker, as one per rotator
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < increments; {
				var d leaseDoc
				v, found, err := c.ReadDoc(ctx, "secret", p, &d)
				if err == nil && !found {
					err = errors.New("document not found")
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("worker %d read: %w", w, h.seen(err)))
					mu.Unlock()
					return
				}
				d.Counter++
				d.Holder = fmt.Sprintf("worker-%d", w)
				_, err = c.WriteDoc(ctx, "secret", p, d, v)
				switch {
				case errors.Is(err, vault.ErrConflict):
					mu.Lock()
					conflicts++
					mu.Unlock()
					continue // another worker wrote in between: read again
				case err != nil:
					mu.Lock()
					errs = append(errs, fmt.Errorf("worker %d write: %w", w, h.seen(err)))
					mu.Unlock()
					return
				}
				done++
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	c := rootClient(t, h, s)
	d, v, found := readDoc(t, h, c, p)
	if !found || d.Counter != workers*increments {
		t.Errorf("counter: got %d (found %v), want %d", d.Counter, found, workers*increments)
	}
	if want := 1 + workers*increments; v != want {
		t.Errorf("version: got %d, want %d (one per increment, after the create)", v, want)
	}
	if cv, err := c.CurrentVersion(ctx, "secret", p); err != nil || cv != v {
		t.Errorf("CurrentVersion: got %d, %v; want %d", cv, h.seen(err), v)
	}
	t.Logf("%d increments by %d workers, %d check-and-set conflicts retried", workers*increments, workers, conflicts)
}
