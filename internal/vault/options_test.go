package vault_test

// Unit tests against fake Vault servers (httptest): the settings that reach
// the wire (namespace, CA, token), the Kubernetes login request, retries,
// timeouts and argument checks.

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/vault"
	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

// request is one request a fakeVault received.
type request struct {
	Method, Path string
	Header       http.Header
	Body         map[string]any
}

// fakeVault answers with handle and records every request.
type fakeVault struct {
	mu     sync.Mutex
	reqs   []request
	handle func(w http.ResponseWriter, r *http.Request)
}

func (f *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	f.mu.Lock()
	f.reqs = append(f.reqs, request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body})
	f.mu.Unlock()
	f.handle(w, r)
}

func (f *fakeVault) requests() []request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]request(nil), f.reqs...)
}

// okVault answers token look-ups, logins and KV v2 reads successfully.
func okVault(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch {
	case r.URL.Path == "/v1/auth/token/lookup-self":
		_, _ = io.WriteString(w, `{"data":{"ttl":1800,"renewable":true}}`)
	case strings.HasPrefix(r.URL.Path, "/v1/auth/") && strings.HasSuffix(r.URL.Path, "/login"):
		_, _ = io.WriteString(w, `{"auth":{"client_token":"issued-`+sentinel+`","renewable":true,"lease_duration":3600}}`)
	case strings.HasPrefix(r.URL.Path, "/v1/secret/data/"):
		_, _ = io.WriteString(w, `{"data":{"data":{"k":"`+sentinel+`"},"metadata":{"version":7}}}`)
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"errors":[]}`)
	}
}

func newFake(t *testing.T, handle func(http.ResponseWriter, *http.Request)) (*fakeVault, *httptest.Server) {
	t.Helper()
	f := &fakeVault{handle: handle}
	ts := httptest.NewServer(f)
	t.Cleanup(ts.Close)
	return f, ts
}

func TestNamespaceAndTokenReachTheWire(t *testing.T) {
	h := newHarness(t)
	f, ts := newFake(t, okVault)
	token := "s.file-token-" + sentinel
	h.secret(token, "issued-"+sentinel)
	cfg := tokenCfg(ts.URL, writeFile(t, "token", token+"\n"))
	cfg.Namespace = "team-x"
	// The process environment must not override the configuration.
	t.Setenv("VAULT_NAMESPACE", "from-env")
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	t.Setenv("VAULT_AGENT_ADDR", "http://127.0.0.1:1")

	c := h.client(cfg, nil)
	if got := c.Address(); got != ts.URL {
		t.Errorf("Address: got %q, want %q", got, ts.URL)
	}
	kv, err := c.ReadKV(t.Context(), "secret", "x", 2)
	if err != nil {
		t.Fatalf("ReadKV: %v", h.seen(err))
	}
	if kv.Version != 7 || kv.Data["k"].Reveal() != sentinel {
		t.Errorf("ReadKV: got version %d (value equal: %v), want 7 and the value served", kv.Version, kv.Data["k"].Reveal() == sentinel)
	}
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("requests: got %d, want 2 (look-up, read)", len(reqs))
	}
	for i, want := range []string{"/v1/auth/token/lookup-self", "/v1/secret/data/x"} {
		r := reqs[i]
		if r.Path != want {
			t.Errorf("request %d: got path %s, want %s", i, r.Path, want)
		}
		if got := r.Header.Get("X-Vault-Namespace"); got != "team-x" {
			t.Errorf("request %d: got X-Vault-Namespace %q, want team-x", i, got)
		}
		if r.Header.Get("X-Vault-Token") != token {
			t.Errorf("request %d: got another X-Vault-Token, want the trimmed file token", i)
		}
	}
}

func TestAddressDefaultsToVaultAddr(t *testing.T) {
	h := newHarness(t)
	// Through Options.Getenv, as every VAULT_* variable rotator honours.
	c := h.client(config.Vault{}, func(k string) string {
		if k == "VAULT_ADDR" {
			return "http://127.0.0.1:8299"
		}
		return ""
	})
	if got, want := c.Address(), "http://127.0.0.1:8299"; got != want {
		t.Errorf("Address without cfg.Address: got %q, want $VAULT_ADDR %q", got, want)
	}
}

func TestLoginRequestsCarryNoEnvironmentToken(t *testing.T) {
	h := newHarness(t)
	f, ts := newFake(t, okVault)
	envToken := "s.env-token-" + sentinel
	secretID := "secret-id-" + sentinel
	h.secret(envToken, secretID, "issued-"+sentinel)
	t.Setenv("VAULT_TOKEN", envToken)

	c := h.client(config.Vault{Address: ts.URL, Auth: config.VaultAuth{
		Method: "approle", Mount: "ar", RoleID: "role-1", SecretIDFile: writeFile(t, "sid", secretID+"\n")}}, nil)
	if err := c.Login(t.Context()); err != nil {
		t.Fatal(h.seen(err))
	}
	if _, err := c.ReadKV(t.Context(), "secret", "x", 2); err != nil {
		t.Fatal(h.seen(err))
	}
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("requests: got %d, want 2 (login, read)", len(reqs))
	}
	login := reqs[0]
	if login.Method != http.MethodPut || login.Path != "/v1/auth/ar/login" {
		t.Errorf("login request: got %s %s, want PUT /v1/auth/ar/login", login.Method, login.Path)
	}
	if login.Header.Get("X-Vault-Token") != "" {
		t.Error("login request: got an X-Vault-Token header, want none ($VAULT_TOKEN must not be sent)")
	}
	if login.Body["role_id"] != "role-1" || login.Body["secret_id"] != secretID {
		t.Error("login body: got another role_id or secret_id, want role-1 and the file's secret id")
	}
	if reqs[1].Header.Get("X-Vault-Token") != "issued-"+sentinel {
		t.Error("read after login: got another token, want the one the login issued")
	}
	if renewable, ttl := c.AuthInfo(); !renewable || ttl != time.Hour {
		t.Errorf("AuthInfo: got %v, %v; want true, 1h", renewable, ttl)
	}
}

func TestKubernetesLogin(t *testing.T) {
	h := newHarness(t)
	f, ts := newFake(t, okVault)
	jwt := "eyJ.jwt-" + sentinel
	h.secret(jwt, "issued-"+sentinel)
	jwtFile := writeFile(t, "token", jwt)

	c := h.client(config.Vault{Address: ts.URL, Auth: config.VaultAuth{
		Method: "kubernetes", Mount: "k8s-prod", Role: "rotator", JWTFile: jwtFile}}, nil)
	if err := c.Login(t.Context()); err != nil {
		t.Fatal(h.seen(err))
	}
	// A rotated service account token is read at the next login.
	rotated := "eyJ.rotated-" + sentinel
	h.secret(rotated)
	if err := os.WriteFile(jwtFile, []byte(rotated), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Login(t.Context()); err != nil {
		t.Fatal(h.seen(err))
	}
	reqs := f.requests()
	if len(reqs) != 2 {
		t.Fatalf("requests: got %d, want 2 logins", len(reqs))
	}
	for i, want := range []string{jwt, rotated} {
		r := reqs[i]
		if r.Method != http.MethodPut || r.Path != "/v1/auth/k8s-prod/login" {
			t.Errorf("login %d: got %s %s, want PUT /v1/auth/k8s-prod/login", i, r.Method, r.Path)
		}
		if r.Body["role"] != "rotator" {
			t.Errorf("login %d: got role %v, want rotator", i, r.Body["role"])
		}
		if r.Body["jwt"] != want {
			t.Errorf("login %d: got another jwt, want the content of jwt_file at that login", i)
		}
	}
	if !c.Authenticated() {
		t.Error("Authenticated: got false, want true")
	}
	if renewable, ttl := c.AuthInfo(); !renewable || ttl != time.Hour {
		t.Errorf("AuthInfo: got %v, %v; want true, 1h", renewable, ttl)
	}
}

func TestKubernetesLoginErrors(t *testing.T) {
	h := newHarness(t)
	f, ts := newFake(t, okVault)
	tests := []struct {
		name      string
		auth      config.VaultAuth
		wantInErr string
	}{
		{"missing jwt_file", config.VaultAuth{Role: "r", JWTFile: "/nonexistent/sa/token"},
			"login with kubernetes at auth/kubernetes: read jwt_file: open /nonexistent/sa/token: no such file or directory"},
		{"empty jwt_file", config.VaultAuth{Role: "r", JWTFile: writeFile(t, "empty", "")}, "is empty"},
		{"no role", config.VaultAuth{JWTFile: writeFile(t, "jwt", "x")}, "auth.role is empty"},
	}
	if _, err := os.Stat(config.DefaultJWTFile); errors.Is(err, os.ErrNotExist) {
		tests = append(tests, struct {
			name      string
			auth      config.VaultAuth
			wantInErr string
		}{"default jwt_file, absent outside Kubernetes", config.VaultAuth{Role: "r"}, "read jwt_file: open " + config.DefaultJWTFile})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.auth.Method = "kubernetes"
			c := h.client(config.Vault{Address: ts.URL, Auth: tt.auth}, nil)
			err := h.seen(c.Login(t.Context()))
			wantKind(t, err, vault.KindInvalid, vault.ErrInvalid)
			if !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("error: got %q, want it to contain %q", err, tt.wantInErr)
			}
		})
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("requests: got %d, want 0 (each error is found before any request)", n)
	}
}

func TestKubernetesLoginAgainstOpenBao(t *testing.T) {
	// No Kubernetes API here for TokenReview, so no login can succeed: this
	// checks what Vault answers to the request the client makes.
	s := vaulttest.Require(t, srv)
	h := newHarness(t)
	if err := s.EnableAuth(t.Context(), "k8s-no-roles", "kubernetes"); err != nil {
		t.Fatal(err)
	}
	jwt := "eyJ." + sentinel
	h.secret(jwt)
	tests := []struct {
		name, mount, want string
	}{
		{"auth method not enabled", "",
			"login with kubernetes at auth/kubernetes: unauthenticated: permission denied (is the kubernetes auth method enabled at auth/kubernetes?)"},
		{"enabled, role unknown", "k8s-no-roles",
			`login with kubernetes at auth/k8s-no-roles: unauthenticated: invalid role name "rotator"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := h.client(config.Vault{Address: s.Addr, Auth: config.VaultAuth{
				Method: "kubernetes", Mount: tt.mount, Role: "rotator", JWTFile: writeFile(t, "jwt", jwt)}}, nil)
			err := h.seen(c.Login(t.Context()))
			wantKind(t, err, vault.KindUnauthenticated, vault.ErrUnauthenticated)
			if err.Error() != tt.want {
				t.Errorf("error: got %q, want %q", err, tt.want)
			}
		})
	}
}

func TestCACert(t *testing.T) {
	h := newHarness(t)
	ts := httptest.NewTLSServer(http.HandlerFunc(okVault))
	t.Cleanup(ts.Close)
	caFile := writeFile(t, "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ts.Certificate().Raw})))
	tokenFile := writeFile(t, "token", "t-"+sentinel)
	h.secret("t-"+sentinel, "issued-"+sentinel)

	t.Run("ca_cert trusts the server", func(t *testing.T) {
		cfg := tokenCfg(ts.URL, tokenFile)
		cfg.CACert = caFile
		if err := h.client(cfg, nil).Login(t.Context()); err != nil {
			t.Fatalf("Login over TLS with ca_cert: got %v, want no error", h.seen(err))
		}
	})
	t.Run("without ca_cert the server is not trusted", func(t *testing.T) {
		t.Setenv("VAULT_CACERT", "")
		err := h.seen(h.client(tokenCfg(ts.URL, tokenFile), nil).Login(t.Context()))
		wantKind(t, err, vault.KindUnreachable, vault.ErrUnreachable)
		if !strings.Contains(err.Error(), "certificate") {
			t.Errorf("error: got %q, want it to be about the certificate", err)
		}
	})

	bad := []struct {
		name, file, wantInErr string
	}{
		{"missing file", "/nonexistent/ca.pem", "open /nonexistent/ca.pem: no such file or directory"},
		{"not PEM", writeFile(t, "junk.pem", "not a certificate"), "holds no PEM certificate"},
		{"broken certificate", writeFile(t, "broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "parse ca_cert"},
	}
	for _, tt := range bad {
		t.Run("bad ca_cert: "+tt.name, func(t *testing.T) {
			cfg := tokenCfg(ts.URL, tokenFile)
			cfg.CACert = tt.file
			_, err := vault.New(cfg, h.options(nil))
			h.note(err)
			wantKind(t, err, vault.KindInvalid, vault.ErrInvalid)
			if !strings.Contains(err.Error(), tt.file) || !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("error: got %q, want it to name %s and contain %q", err, tt.file, tt.wantInErr)
			}
		})
	}
}

func TestNoRetriesAndHTTPErrors(t *testing.T) {
	h := newHarness(t)
	t.Setenv("VAULT_MAX_RETRIES", "5") // vault/api would honour it
	tests := []struct {
		name     string
		status   int
		body     string
		wantKind vault.Kind
		wantMsg  string
	}{
		{"500 with an error document", 500, `{"errors":["internal error"]}`, vault.KindOther,
			"read secret/x (kv v2): vault answered HTTP 500: internal error"},
		{"502 from a proxy: body left out", 502, "<html>" + sentinel + "</html>", vault.KindOther,
			"read secret/x (kv v2): vault answered HTTP 502"},
		{"503 sealed", 503, `{"errors":["Vault is sealed"]}`, vault.KindSealed,
			"read secret/x (kv v2): vault is sealed"},
		{"503 from a load balancer is not sealed", 503, `{"errors":["upstream unavailable"]}`, vault.KindOther,
			"read secret/x (kv v2): vault answered HTTP 503: upstream unavailable"},
		{"503 html is not sealed", 503, "<html>down</html>", vault.KindOther,
			"read secret/x (kv v2): vault answered HTTP 503"},
		{"429", 429, `{"errors":["request path \"secret/data/x\": rate limit quota exceeded"]}`, vault.KindOther,
			`read secret/x (kv v2): vault answered HTTP 429: request path "secret/data/x": rate limit quota exceeded`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, ts := newFake(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v1/auth/token/lookup-self" {
					okVault(w, r)
					return
				}
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			c := h.client(tokenCfg(ts.URL, writeFile(t, "token", "t")), nil)
			_, err := c.ReadKV(t.Context(), "secret", "x", 2)
			h.note(err)
			wantKind(t, err, tt.wantKind, nil)
			if err.Error() != tt.wantMsg {
				t.Errorf("error: got %q, want %q", err, tt.wantMsg)
			}
			reads := 0
			for _, r := range f.requests() {
				if r.Path == "/v1/secret/data/x" {
					reads++
				}
			}
			if reads != 1 {
				t.Errorf("read requests: got %d, want 1 (no retries)", reads)
			}
		})
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	h := newHarness(t)
	release := make(chan struct{})
	_, ts := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		select { // never answers: waits for the client to give up
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })
	opts := h.options(nil)
	opts.Timeout = 50 * time.Millisecond
	c, err := vault.New(tokenCfg(ts.URL, writeFile(t, "token", "t")), opts)
	if err != nil {
		t.Fatal(err)
	}

	err = h.seen(c.Login(t.Context()))
	wantKind(t, err, vault.KindUnreachable, vault.ErrUnreachable)
	if !strings.Contains(err.Error(), "vault unreachable at "+ts.URL) {
		t.Errorf("timeout error: got %q, want it to name the address", err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err = h.seen(c.Login(ctx))
	wantKind(t, err, vault.KindOther, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("errors.Is(%v, context.Canceled): got false, want true", err)
	}
}

func TestInvalidArguments(t *testing.T) {
	h := newHarness(t)
	f, ts := newFake(t, okVault)
	c := h.client(tokenCfg(ts.URL, writeFile(t, "token", "t")), nil)
	tests := []struct {
		name, mount, path string
		kvVersion         int
		wantMsg           string
	}{
		{"empty mount", "", "x", 2, "read x (kv v2): mount is empty"},
		{"slashes only", "/", "x", 2, "read x (kv v2): mount is empty"},
		{"empty path", "secret", "", 2, "read secret (kv v2): path is empty"},
		{"kv version 3", "secret", "x", 3, "read secret/x: kv version 3 is neither 1 nor 2"},
		{"kv version -1", "secret", "x", -1, "read secret/x: kv version -1 is neither 1 nor 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.ReadKV(t.Context(), tt.mount, tt.path, tt.kvVersion)
			h.note(err)
			wantKind(t, err, vault.KindInvalid, vault.ErrInvalid)
			if err.Error() != tt.wantMsg {
				t.Errorf("error: got %q, want %q", err, tt.wantMsg)
			}
		})
	}
	if n := len(f.requests()); n != 0 {
		t.Errorf("requests: got %d, want 0", n)
	}
	if n := h.obs.total(); n != 0 {
		t.Errorf("observed requests: got %d, want 0", n)
	}

	_, err := vault.New(config.Vault{Address: ts.URL, Auth: config.VaultAuth{Method: "ldap"}}, h.options(nil))
	h.note(err)
	wantKind(t, err, vault.KindInvalid, vault.ErrInvalid)
	if want := `configure: unknown auth method "ldap" (want token, approle or kubernetes)`; err.Error() != want {
		t.Errorf("unknown method: got %q, want %q", err, want)
	}
}

func TestObserve(t *testing.T) {
	h := newHarness(t)
	_, ts := newFake(t, okVault)
	c := h.client(tokenCfg(ts.URL, writeFile(t, "token", "t")), nil)
	if _, err := c.ReadKV(t.Context(), "secret", "x", 2); err != nil {
		t.Fatal(h.seen(err))
	}
	_, err := c.ReadKV(t.Context(), "secret-missing", "x", 2)
	h.note(err)
	want := []string{"login/ok", "read/ok", "read/error"}
	h.obs.mu.Lock()
	got := append([]string(nil), h.obs.calls...)
	h.obs.mu.Unlock()
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("observed: got %v, want %v", got, want)
	}
}
