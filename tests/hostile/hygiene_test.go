package hostile_test

// Secret hygiene beyond the checks every helper makes: plain http refused,
// Vault over TLS with and without the configured CA, a daemon whose
// integrations fail in every way, and upstream answers that echo a value.

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
	"github.com/ocamba-rotator/rotator/internal/vaulttest"
)

func TestInsecureHTTPRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.config(cfg{integrations: f.telegram("tg", "501")})
	b := mustRead(t, c)
	p := writeFile(t, f.dir, "plain-http.yaml", strings.Replace(b, "  allow_insecure_http: true\n", "", 1))
	for _, cmd := range []string{"validate", "once", "plan", "run"} {
		f.wantInvalid([]string{cmd, "--config", p}, "hood.base_url", "allow_insecure_http")
	}
	p = writeFile(t, f.dir, "plain-http-false.yaml", strings.Replace(b, "allow_insecure_http: true", "allow_insecure_http: false", 1))
	f.wantInvalid([]string{"validate", "--config", p}, "hood.base_url")
}

// A secret written into the configuration by mistake is refused without
// being repeated.
func TestSecretInConfigNotEchoed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.config(cfg{integrations: `  - {name: tg, id: "511", provider: telegram, source: {mount: secret, path: "{P}/tg"}, static: {auth_token: "` + sentinel + `"}}
  - {name: sg, id: "512", provider: sendgrid_email, source: {mount: secret, path: "{P}/sg"}, static: {api_kye: "` + sentinel + `"}}
  - {name: tw, id: "513", provider: twilio_sms, source: {mount: secret, path: "{P}/tw"}, fields: {auth_token: "` + sentinel + `"}, static: {default_phone_number: "` + sentinel + `"}}
`})
	f.wantInvalid([]string{"validate", "--config", c}, "integrations[0].static.auth_token", "integrations[1].static.api_kye")
	// The value of a misplaced secret in an unknown key's place.
	b := mustRead(t, c)
	p := writeFile(t, f.dir, "unknown-key.yaml", b+"bogus_key: "+sentinel+"\n")
	f.wantInvalid([]string{"validate", "--config", p}, "bogus_key")
}

// Hood answers an error whose message repeats the value that was sent.
// rotator surfaces Hood's message (it carries what support needs) with the
// values it sent scrubbed out: the summary, the log, the status, the state
// file and the audit log keep the message, never the value.
func TestHoodErrorEchoingTheValue(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.config(cfg{integrations: f.telegram("tg", "521")})
	f.hood.Inject(hoodtest.Fault{Method: http.MethodPatch, Status: http.StatusBadRequest,
		Message: "settings.auth_token: value '" + sentinel + "' is not a valid bot token"})
	r := f.once(c) // run() fails the test if the value shows
	wantLine(t, r, "tg", "failed", "400", "is not a valid bot token")
	f.auditEvents("tg")
	if a := lastAttempt(f.record("tg")); !strings.Contains(a.Error, "is not a valid bot token") {
		t.Errorf("state: last error %q, want Hood's message kept", a.Error)
	}

	// The same through the daemon's answers and status.
	f.hood.Inject(hoodtest.Fault{Method: http.MethodPatch, Status: http.StatusBadRequest, Times: -1,
		Message: "bad value " + sentinel + " (and the token " + sentinel + ")"})
	b := mustRead(t, c)
	tok := writeFile(t, f.dir, "admin-token", sentinel+"\n")
	d, out := f.startDaemon(writeFile(t, f.dir, "run.yaml", b+"admin:\n  listen: 127.0.0.1:0\n  token_file: "+tok+"\n"))
	if d == nil {
		t.Fatalf("rotator run exited before serving:\n%s", out)
	}
	eventually(t, "the start-up pass failed tg", func() bool {
		st := d.status()
		return len(st) == 1 && st[0]["last_result"] == "failed"
	})
	d.call("POST", "/v1/rotate", sentinel, nil)
	d.scrape()
}

// A Hood that returns secret settings in plain text on GET (the
// documentation does not say they are masked): rotator reads only the
// names, so the values go nowhere, even when the read-back fails.
func TestHoodReturnsSecretsInPlain(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	target, err := url.Parse(f.hood.URL())
	if err != nil {
		t.Fatal(err)
	}
	unmasked := atomic.Int64{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method != http.MethodGet {
			return nil
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(hoodtest.MaskedValue)) {
			unmasked.Add(1)
			b = bytes.ReplaceAll(b, []byte(hoodtest.MaskedValue), []byte(sentinel))
		}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		resp.ContentLength = int64(len(b))
		resp.Header.Set("Content-Length", strconv.Itoa(len(b)))
		return nil
	}
	proxy := httptest.NewServer(rp)
	defer proxy.Close()

	ints := f.telegram("ok", "561") + f.telegram("unverified", "562")
	if err := f.hood.AddIntegration("561", "telegram", map[string]string{"auth_token": "old", "chat_id": "1"}); err != nil {
		t.Fatal(err)
	}
	if err := f.hood.AddIntegration("562", "telegram", map[string]string{"auth_token": "old", "chat_id": "1"}); err != nil {
		t.Fatal(err)
	}
	f.hood.Inject(hoodtest.Fault{ID: "562", VerifyStatus: "inactive"})
	c := f.config(cfg{hoodURL: proxy.URL, integrations: ints})
	r := f.once(c)
	if r.code != 1 {
		t.Fatalf("exit code: got %d, want 1\n%s", r.code, r.stdout)
	}
	wantLine(t, r, "ok", "pushed")
	wantLine(t, r, "unverified", "failed", "verification failed")
	if unmasked.Load() == 0 {
		t.Fatalf("the proxy unmasked no GET answer: the scenario did not happen")
	}
	f.plan(c)
	f.auditEvents("ok")
	f.record("unverified")
}

// The Hood token in Vault with a trailing newline or inner space: refused
// before any request, without printing it.
func TestHoodTokenWithWhitespace(t *testing.T) {
	t.Parallel()
	for i, tok := range []string{sentinel + "\n", "Bearer " + sentinel, sentinel + "\x00"} {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			c := f.config(cfg{integrations: f.telegram("tg", "531")})
			f.put("secret", "hood", map[string]any{"token": tok})
			r := f.once(c)
			if r.code != 1 {
				t.Fatalf("exit code: got %d, want 1\n%s", r.code, r.stdout)
			}
			wantLine(t, r, "tg", "failed", "token")
			if got := f.count("", ""); got != 0 {
				t.Errorf("Hood requests with a malformed token: got %d, want 0", got)
			}
		})
	}
}

// A daemon whose integrations fail in every way; every answer, scrape and
// log line it gives stays free of the sentinel.
func TestHygieneDaemonUnderFaults(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ints := f.telegram("ok", "541") + f.telegram("gone", "542") + f.telegram("down", "543") +
		f.telegram("unverified", "544") + f.telegram("echo", "545")
	f.put("secret", "nonstring", map[string]any{"auth_token": map[string]any{"x": sentinel}, "chat_id": 1})
	f.addHood(map[string]string{"546": "telegram"})
	ints += "  - {name: nonstring, id: \"546\", provider: telegram, source: {mount: secret, path: \"{P}/nonstring\"}}\n"
	f.hood.RemoveIntegration("542")
	f.hood.Inject(hoodtest.Fault{ID: "543", Status: 503, Times: -1, Message: "upstream unavailable"})
	f.hood.Inject(hoodtest.Fault{ID: "544", VerifyStatus: "inactive", Times: -1})
	d, out := f.startDaemon(f.config(cfg{admin: true, integrations: ints}))
	if d == nil {
		t.Fatalf("rotator run exited before serving:\n%s", out)
	}
	eventually(t, "the start-up pass reported every integration", func() bool {
		n := 0
		for _, s := range d.status() {
			if s["last_result"] != nil && s["last_result"] != "" {
				n++
			}
		}
		return n == 6
	})
	want := map[string]string{"ok": "pushed", "gone": "failed", "down": "failed", "unverified": "failed", "echo": "pushed", "nonstring": "failed"}
	for _, s := range d.status() {
		name, _ := s["name"].(string)
		if s["last_result"] != want[name] {
			t.Errorf("status of %s: %v (%v), want %s", name, s["last_result"], s["last_error"], want[name])
		}
	}
	// Forced passes, dry runs, single integrations, status and metrics.
	for _, path := range []string{"/v1/rotate", "/v1/rotate?dry_run=true", "/v1/rotate/down", "/v1/rotate/unverified?dry_run=true"} {
		code, body := d.call("POST", path, sentinel, nil)
		if code != http.StatusOK {
			t.Errorf("POST %s: got %d, want 200", path, code)
		}
		var rep struct {
			Outcomes []struct{ Name, Result, Error string } `json:"outcomes"`
		}
		if err := json.Unmarshal(body, &rep); err != nil || len(rep.Outcomes) == 0 {
			t.Errorf("POST %s: answer without outcomes (%v)", path, err)
		}
	}
	d.status()
	scrape := d.scrape()
	if !strings.Contains(scrape, `rotator_consecutive_failures{integration="down"}`) {
		t.Errorf("/metrics: no rotator_consecutive_failures series for down")
	}
	if d.stop() != 0 {
		t.Errorf("rotator run: non-zero exit after SIGTERM")
	}
	// After the daemon: plan and the files (checked at cleanup too).
	r := f.plan(f.dir + "/config.yaml")
	wantLine(t, r, "ok", "unchanged")
	f.auditEvents("ok")
	f.record("ok")
}

// ---------------------------------------------------------------------------
// Vault over TLS.

// tlsVault is an OpenBao dev server with TLS (-dev-tls), its root token the
// sentinel.
type tlsVault struct {
	addr string // https://127.0.0.1:PORT
	ca   string // the CA file bao wrote
	cmd  *exec.Cmd
}

func startTLSVault(t *testing.T) *tlsVault {
	t.Helper()
	bin, err := vaulttest.BinPath()
	if err != nil {
		t.Skipf("no bao binary: %v", err)
	}
	var lastErr error
	for range 3 {
		v, err := tryTLSVault(t, bin)
		if err == nil {
			return v
		}
		lastErr = err
	}
	t.Fatalf("start bao -dev -dev-tls: %v", lastErr)
	return nil
}

func tryTLSVault(t *testing.T, bin string) (*tlsVault, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	certs := filepath.Join(dir, "certs")
	if err := os.Mkdir(certs, 0o700); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "bao.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "server", "-dev", "-dev-tls", "-dev-tls-cert-dir="+certs,
		"-dev-listen-address="+listen, "-dev-root-token-id="+sentinel, "-dev-no-store-token")
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + dir}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	v := &tlsVault{addr: "https://" + listen, ca: filepath.Join(certs, "vault-ca.pem"), cmd: cmd}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := v.healthy(); err == nil {
			break
		} else if time.Now().After(deadline) {
			stop()
			return nil, fmt.Errorf("not healthy after 30s: %w", err)
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(filepath.Join(dir, "bao.log"))
			return nil, fmt.Errorf("bao exited: %s", strings.ReplaceAll(lastLines(string(b), 5), sentinel, "[ROOT TOKEN]"))
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Cleanup(stop)
	return v, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (v *tlsVault) client() (*http.Client, error) {
	pemBytes, err := os.ReadFile(v.ca)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, errors.New("no certificate in the CA file")
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}, nil
}

func (v *tlsVault) healthy() error {
	c, err := v.client()
	if err != nil {
		return err
	}
	resp, err := c.Get(v.addr + "/v1/sys/health")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %d", resp.StatusCode)
	}
	return nil
}

// put writes a KV v2 secret at secret/<path> (dev mode mounts KV v2 there).
func (v *tlsVault) put(t *testing.T, path string, data map[string]any) {
	t.Helper()
	c, err := v.client()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]any{"data": data})
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, v.addr+"/v1/secret/data/"+path, strings.NewReader(string(body)))
	req.Header.Set("X-Vault-Token", sentinel)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("put secret/%s: got %d, want 200", path, resp.StatusCode)
	}
}

// otherCA writes a CA certificate that did not sign bao's.
func otherCA(t *testing.T, dir string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "not the vault CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "other-ca.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestVaultTLS(t *testing.T) {
	t.Parallel()
	vaulttest.Require(t, vaultSrv)
	v := startTLSVault(t)
	f := newFixture(t)
	v.put(t, f.prefix+"/hood", map[string]any{"token": sentinel})
	v.put(t, f.prefix+"/tg", map[string]any{"auth_token": sentinel, "chat_id": "42"})
	f.addHood(map[string]string{"551": "telegram"})
	ints := "  - {name: tg, id: \"551\", provider: telegram, source: {mount: secret, path: \"{P}/tg\"}}\n"

	t.Run("with the configured CA", func(t *testing.T) {
		c := f.config(cfg{vaultAddr: v.addr, vaultCA: v.ca, integrations: ints})
		if r := f.run("validate", "--config", c); r.code != 0 {
			t.Fatalf("validate: exit code %d, want 0\n%s", r.code, r.stderr)
		}
		r := f.once(c, "--force")
		if r.code != 0 {
			t.Fatalf("exit code: got %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		wantLine(t, r, "tg", "pushed", "v1")
	})
	t.Run("with $VAULT_CACERT", func(t *testing.T) {
		c := f.config(cfg{vaultAddr: v.addr, integrations: ints})
		f.env = []string{"VAULT_CACERT=" + v.ca}
		defer func() { f.env = nil }()
		r := f.once(c, "--force")
		if r.code != 0 {
			t.Fatalf("exit code: got %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		wantLine(t, r, "tg", "pushed")
	})
	for _, tt := range []struct {
		name string
		ca   func() string
	}{
		{"without a CA", func() string { return "" }},
		{"with another CA", func() string { return otherCA(t, f.dir) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := f.count("", "")
			c := f.config(cfg{vaultAddr: v.addr, vaultCA: tt.ca(), integrations: ints})
			r := f.once(c, "--force")
			if r.code != 1 {
				t.Fatalf("exit code: got %d, want 1\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			wantLine(t, r, "tg", "failed", "certificate")
			if got := f.count("", ""); got != before {
				t.Errorf("Hood requests without a Vault secret: got %d, want 0", got-before)
			}
		})
	}
	// The configuration decides certificate checks: $VAULT_SKIP_VERIFY,
	// which vault/api applies by itself, is ignored (with a warning naming
	// it), and only vault.tls_skip_verify turns the check off.
	for _, tt := range []struct {
		name string
		ca   func() string
	}{
		{"$VAULT_SKIP_VERIFY with another CA", func() string { return otherCA(t, f.dir) }},
		{"$VAULT_SKIP_VERIFY without a CA", func() string { return "" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := f.count("", "")
			c := f.config(cfg{vaultAddr: v.addr, vaultCA: tt.ca(), integrations: ints})
			f.env = []string{"VAULT_SKIP_VERIFY=true", "VAULT_TLS_SERVER_NAME=tls-name-not-to-log.invalid"}
			defer func() { f.env = nil }()
			r := f.once(c, "--force")
			if r.code != 1 {
				t.Fatalf("exit code: got %d, want 1 (the certificate refused)\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			wantLine(t, r, "tg", "failed", "certificate")
			if got := f.count("", ""); got != before {
				t.Errorf("Hood requests without a Vault secret: got %d, want 0", got-before)
			}
			for _, name := range []string{"VAULT_SKIP_VERIFY", "VAULT_TLS_SERVER_NAME"} {
				if n := countLogs(r.stderr, "environment variable ignored: rotator takes its Vault settings from the configuration file only", map[string]string{"level": "WARN", "variable": name}); n < 1 {
					t.Errorf("warnings naming %s: got %d, want at least 1\n%s", name, n, r.stderr)
				}
			}
			if strings.Contains(r.stdout+r.stderr, "tls-name-not-to-log") {
				t.Errorf("the log shows the value of an ignored variable, want its name only:\n%s", r.stderr)
			}
		})
	}
	t.Run("vault.tls_skip_verify: true", func(t *testing.T) {
		c := f.config(cfg{vaultAddr: v.addr, vaultSkipVerify: true, integrations: ints})
		if r := f.run("validate", "--config", c); r.code != 0 {
			t.Fatalf("validate: exit code %d, want 0\n%s", r.code, r.stderr)
		}
		r := f.once(c, "--force")
		if r.code != 0 {
			t.Fatalf("exit code: got %d, want 0\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		wantLine(t, r, "tg", "pushed")
		msg := "vault.tls_skip_verify is true: the Vault server's TLS certificate is not checked, anyone on the path to it can read the secrets"
		if n := countLogs(r.stderr, msg, map[string]string{"level": "WARN", "address": v.addr}); n < 1 {
			t.Errorf("warnings about tls_skip_verify: got %d, want at least 1\n%s", n, r.stderr)
		}
	})
	t.Run("vault.tls_skip_verify with vault.ca_cert", func(t *testing.T) {
		before := f.count("", "")
		c := f.config(cfg{vaultAddr: v.addr, vaultCA: v.ca, vaultSkipVerify: true, integrations: ints})
		for _, cmd := range []string{"validate", "once"} {
			r := f.run(cmd, "--config", c)
			if r.code != 2 {
				t.Fatalf("%s: exit code %d, want 2\n%s\n%s", cmd, r.code, r.stdout, r.stderr)
			}
			want := "vault.tls_skip_verify (line 4): refused together with vault.ca_cert (line 3)"
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%s: got\n%s\nwant it to contain %q", cmd, r.stderr, want)
			}
		}
		if got := f.count("", ""); got != before {
			t.Errorf("Hood requests: got %d, want 0", got-before)
		}
	})
	t.Run("a CA file that is not PEM", func(t *testing.T) {
		bad := writeFile(t, f.dir, "not-a-ca.pem", "not a certificate\n")
		c := f.config(cfg{vaultAddr: v.addr, vaultCA: bad, integrations: ints})
		r := f.once(c, "--force")
		if r.code == 0 {
			t.Fatalf("exit code: got 0, want a failure")
		}
		if !strings.Contains(r.stdout+r.stderr, "not-a-ca.pem") {
			t.Errorf("the error does not name the CA file:\n%s\n%s", r.stdout, r.stderr)
		}
		t.Logf("a CA file that is not PEM: exit code %d", r.code)
	})
}
