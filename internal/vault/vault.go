package vault

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"

	"github.com/ocamba-rotator/rotator/internal/config"
)

// DefaultTimeout bounds each Vault request when Options.Timeout is zero.
const DefaultTimeout = config.DefaultVaultTimeout

// Auth methods (config.VaultAuth.Method).
const (
	MethodToken      = "token"
	MethodAppRole    = "approle"
	MethodKubernetes = "kubernetes"
)

// Operation and result names passed to Options.Observe.
const (
	// OpLogin: logins and token look-ups.
	OpLogin = "login"
	// OpRead: KV reads (ReadKV, ReadKVVersion, ReadDoc).
	OpRead = "read"
	// OpWrite: KV v2 check-and-set writes (WriteDoc).
	OpWrite = "write"
	// OpMetadata: KV v2 metadata reads (CurrentVersion).
	OpMetadata = "metadata"
	// ResultOK is a request that succeeded.
	ResultOK = "ok"
	// ResultError is any failed request, a 404 included, except ReadDoc's:
	// a document not written yet is an expected answer there (ResultOK).
	ResultError = "error"
)

// Options are the Client's collaborators; all are optional.
type Options struct {
	// Logger receives debug and warning lines (never secret values).
	// Default: discard.
	Logger *slog.Logger
	// Timeout bounds each Vault request. Default: DefaultTimeout.
	Timeout time.Duration
	// Observe is called once per Vault request with the operation (OpLogin
	// for logins and token look-ups, OpRead for KV reads, OpWrite for KV
	// writes, OpMetadata for KV metadata reads, OpRenew for renewals) and
	// the result (ResultOK or ResultError), for metrics. It must be safe for
	// concurrent use.
	Observe func(operation, result string)
	// Getenv reads the variables of HonouredEnv (VAULT_TOKEN for the token
	// method; VAULT_ADDR, VAULT_NAMESPACE and VAULT_CACERT when the
	// configuration leaves them empty) and those of IgnoredEnv, to warn
	// about them. Default: os.Getenv.
	Getenv func(string) string
	// OnAuth, when set, is called with the state of Authenticated() after
	// the client's first login attempt (whatever its outcome, so that a
	// gauge set by an earlier client is corrected), then each time it
	// changes (for the rotator_vault_authenticated gauge): true after a
	// successful login, false when a login is refused or the token is
	// found invalid or expired. Calls are made one at a time, in order,
	// outside the client's locks; a flip that another undoes before the
	// call is made may be left out, but the last call always gives the
	// current state. It must return quickly and may call Authenticated and
	// AuthInfo.
	OnAuth func(authenticated bool)
}

// Client is rotator's Vault client. Create it with New, then Login.
type Client struct {
	cfg     config.Vault
	method  string
	mount   string // auth mount of approle/kubernetes
	addr    string
	timeout time.Duration
	log     *slog.Logger
	observe func(operation, result string)
	getenv  func(string) string
	onAuth  func(bool)

	api       *api.Client // reads; holds the login token
	loginAPI  *api.Client // logins and token checks; holds a token only during a token login
	healthAPI *api.Client // sys/health: no token, no namespace
	// httpClients are the HTTP clients of api, loginAPI and healthAPI,
	// whose idle connections KeepAlive closes when it returns.
	httpClients []*http.Client

	loginMu sync.Mutex // serialises logins (and the use of loginAPI)

	notifyMu     sync.Mutex // serialises onAuth calls and guards the two below
	notifiedOnce bool       // onAuth was called
	notified     bool       // the state last passed to onAuth

	mu            sync.Mutex // guards the fields below
	authenticated bool
	gen           uint64        // bumped by every successful login
	authSecret    *api.Secret   // what the last login returned (auth info for renewal)
	loginAt       time.Time     // when the last successful login was made
	changed       chan struct{} // closed (and replaced) when gen or authenticated changes
}

// New creates a client for cfg without contacting Vault. The client is
// built from cfg alone: cfg.Address, cfg.Namespace and cfg.CACert default
// to $VAULT_ADDR, $VAULT_NAMESPACE and $VAULT_CACERT (through
// Options.Getenv), and every other VAULT_* variable that vault/api would
// apply by itself (IgnoredEnv) is ignored, with one warning per variable
// set; certificate checks are turned off only by cfg.TLSSkipVerify, with a
// warning each time a client is created. vault/api's retries are turned
// off, and a $VAULT_TOKEN that vault/api would pick up by itself is
// dropped: the token comes from Login. Errors are *Error of KindInvalid (Op
// "configure"), such as a CA file that cannot be read or holds no
// certificate, or both cfg.TLSSkipVerify and a CA file.
func New(cfg config.Vault, opts Options) (*Client, error) {
	c := &Client{
		cfg:     cfg,
		method:  cfg.Auth.Method,
		timeout: opts.Timeout,
		log:     opts.Logger,
		observe: opts.Observe,
		getenv:  opts.Getenv,
		onAuth:  opts.OnAuth,
		changed: make(chan struct{}),
	}
	if c.method == "" {
		c.method = MethodToken
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.observe == nil {
		c.observe = func(string, string) {}
	}
	if c.getenv == nil {
		c.getenv = os.Getenv
	}
	invalid := func(detail string, err error) error {
		return &Error{Op: "configure", Kind: KindInvalid, Detail: detail, Err: err}
	}
	switch c.method {
	case MethodToken:
	case MethodAppRole, MethodKubernetes:
		c.mount = strings.Trim(cfg.Auth.Mount, "/")
		if c.mount == "" {
			c.mount = c.method
		}
	default:
		return nil, invalid(fmt.Sprintf("unknown auth method %q (want token, approle or kubernetes)", c.method), ErrInvalid)
	}

	for _, dst := range []**api.Client{&c.api, &c.loginAPI, &c.healthAPI} {
		client, hc, err := c.newAPI(nil)
		if err != nil {
			return nil, err
		}
		*dst = client
		c.httpClients = append(c.httpClients, hc)
	}
	c.healthAPI.ClearNamespace()
	c.addr = c.api.Address()
	for _, name := range IgnoredEnv(c.getenv) {
		c.log.Warn("environment variable ignored: rotator takes its Vault settings from the configuration file only",
			"variable", name)
	}
	if cfg.TLSSkipVerify {
		c.log.Warn("vault.tls_skip_verify is true: the Vault server's TLS certificate is not checked, anyone on the path to it can read the secrets",
			"address", c.addr)
	}
	return c, nil
}

// HonouredEnv returns the VAULT_* environment variables rotator uses, all
// through the configuration: VAULT_ADDR, VAULT_NAMESPACE and VAULT_CACERT
// are the defaults of vault.address, vault.namespace and vault.ca_cert, and
// VAULT_TOKEN is the token of method token without auth.token_file.
func HonouredEnv() []string {
	return []string{"VAULT_ADDR", "VAULT_CACERT", "VAULT_NAMESPACE", "VAULT_TOKEN"}
}

// ignoredEnv lists the VAULT_* variables that vault/api (v1.23) reads by
// itself and rotator ignores: TLS (a setting that weakens it, such as
// VAULT_SKIP_VERIFY, is ignored unless the configuration file opts in with
// vault.tls_skip_verify), retries, timeouts, rate limits, proxies,
// redirects, extra headers and response wrapping are rotator's own
// settings.
func ignoredEnv() []string {
	return []string{
		"VAULT_AGENT_ADDR",
		"VAULT_CACERT_BYTES",
		"VAULT_CAPATH",
		"VAULT_CLIENT_CERT",
		"VAULT_CLIENT_KEY",
		"VAULT_CLIENT_TIMEOUT",
		"VAULT_DISABLE_REDIRECTS",
		"VAULT_HEADERS",
		"VAULT_HTTP_PROXY",
		"VAULT_MAX_RETRIES",
		"VAULT_PROXY_ADDR",
		"VAULT_RATE_LIMIT",
		"VAULT_SKIP_VERIFY",
		"VAULT_SRV_LOOKUP",
		"VAULT_TLS_SERVER_NAME",
		"VAULT_WRAP_TTL",
	}
}

// IgnoredEnv returns, sorted, the names of the VAULT_* variables that
// vault/api would apply and rotator ignores which are set (non-empty) in
// getenv's environment. Only names are returned, never values.
func IgnoredEnv(getenv func(string) string) []string {
	var set []string
	for _, name := range ignoredEnv() {
		if getenv(name) != "" {
			set = append(set, name)
		}
	}
	return set
}

// newAPI builds one vault/api client from c.cfg alone, and returns it with
// its HTTP client. wrap, when not nil, wraps the HTTP transport.
//
// The configuration is built here rather than by api.DefaultConfig, which
// applies the VAULT_* environment (VAULT_SKIP_VERIFY among them, which would
// turn certificate checks off whatever vault.ca_cert says). Only the
// variables in HonouredEnv are used, as documented there; what api.NewClient
// still takes from the environment by itself (token, namespace, headers,
// the wrapping TTL of every request) is reset.
func (c *Client) newAPI(wrap func(http.RoundTripper) http.RoundTripper) (*api.Client, *http.Client, error) {
	invalid := func(detail string, err error) error {
		return &Error{Op: "configure", Kind: KindInvalid, Detail: detail, Err: err}
	}
	address := c.cfg.Address
	if address == "" {
		address = c.getenv("VAULT_ADDR")
	}
	if address == "" {
		address = api.DefaultAddress
	}
	namespace := c.cfg.Namespace
	if namespace == "" {
		namespace = c.getenv("VAULT_NAMESPACE")
	}
	caCert := c.cfg.CACert
	if caCert == "" && !c.cfg.TLSSkipVerify {
		caCert = c.getenv("VAULT_CACERT")
	}
	if caCert != "" && c.cfg.TLSSkipVerify {
		return nil, nil, invalid("tls_skip_verify and ca_cert are both set: choose one", ErrInvalid)
	}

	// The transport of api.DefaultConfig (go-cleanhttp's pooled transport,
	// TLS 1.2 at least), without its environment.
	transport := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   30 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   runtime.GOMAXPROCS(0) + 1,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
	hc := &http.Client{
		Transport: transport,
		// vault/api follows Vault's redirects itself.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	ac := &api.Config{
		Address:    address,
		HttpClient: hc,
		Timeout:    c.timeout,
		MaxRetries: 0,
	}
	if caCert != "" {
		if err := checkCACert(caCert); err != nil {
			return nil, nil, invalid(err.Error(), err)
		}
	}
	if caCert != "" || c.cfg.TLSSkipVerify {
		if err := ac.ConfigureTLS(&api.TLSConfig{CACert: caCert, Insecure: c.cfg.TLSSkipVerify}); err != nil {
			return nil, nil, invalid(fmt.Sprintf("ca_cert %s: %v", caCert, err), err)
		}
	}
	if wrap != nil {
		hc.Transport = wrap(hc.Transport)
	}
	client, err := api.NewClient(ac)
	if err != nil {
		// api.NewClient parses the whole VAULT_* environment even though
		// none of it is used: a malformed value still stops it.
		return nil, nil, invalid(fmt.Sprintf("create client for %q: %v (vault/api parses every VAULT_* variable, even those rotator ignores: fix or unset it)", address, err), err)
	}
	// api.NewClient takes $VAULT_TOKEN by itself; the token comes from Login.
	client.ClearToken()
	// It adds $VAULT_HEADERS to every request: keep only its own header.
	client.SetHeaders(http.Header{api.RequestHeaderName: []string{"true"}})
	// Without a lookup function, $VAULT_WRAP_TTL would wrap every response.
	client.SetWrappingLookupFunc(func(string, string) string { return "" })
	if namespace != "" {
		client.SetNamespace(namespace)
	}
	return client, hc, nil
}

// checkCACert checks that path is a readable PEM file with a certificate.
func checkCACert(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read ca_cert: %w", err)
	}
	for rest := b; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return fmt.Errorf("ca_cert %s holds no PEM certificate", path)
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("parse ca_cert %s: %w", path, err)
		}
		return nil
	}
}

// Address is the Vault address the client talks to.
func (c *Client) Address() string { return c.addr }

// Login logs in with the configured method and keeps the token for reads:
//
//   - token: the token in auth.token_file (surrounding space trimmed), else
//     $VAULT_TOKEN (through Options.Getenv), checked with a token look-up
//     (auth/token/lookup-self); a refused token is KindUnauthenticated.
//   - approle: role_id and the secret id read from secret_id_file, at the
//     auth mount (default "approle").
//   - kubernetes: role and the service account JWT read from jwt_file, at the
//     auth mount (default "kubernetes").
//
// Files are read at each login, so rotated credentials are picked up.
// Errors are *Error with Op "login": KindInvalid before any request (missing
// file, no token), KindUnauthenticated when Vault refuses the credentials,
// KindSealed, KindUnreachable. A refused login (KindUnauthenticated or
// KindInvalid) leaves the client unauthenticated; a sealed or unreachable
// Vault leaves the previous login, if any, in force.
func (c *Client) Login(ctx context.Context) error {
	defer c.notifyAuth() // after the unlock
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	return c.loginLocked(ctx)
}

// loginLocked logs in; c.loginMu is held.
func (c *Client) loginLocked(ctx context.Context) error {
	base := Error{Op: OpLogin, Method: c.method, Mount: c.mount, Addr: c.addr}
	sec, token, err := c.doLogin(ctx, base)
	if err != nil {
		var e *Error
		if errors.As(err, &e) && (e.Kind == KindUnauthenticated || e.Kind == KindInvalid) {
			c.mu.Lock()
			if c.authenticated {
				c.authenticated = false
				c.signalLocked()
			}
			c.mu.Unlock()
		}
		c.log.WarnContext(ctx, "vault login failed", "method", c.method, "error", err.Error())
		return err
	}
	c.mu.Lock()
	c.api.SetToken(token) // with gen, under mu: see ReadKV
	c.authenticated = true
	c.gen++
	c.authSecret = sec
	c.loginAt = time.Now()
	c.signalLocked()
	c.mu.Unlock()
	renewable, ttl := authInfo(sec)
	c.log.DebugContext(ctx, "vault login succeeded", "method", c.method, "renewable", renewable, "ttl", ttl.String())
	return nil
}

// doLogin performs one login and returns what Vault answered and the token.
func (c *Client) doLogin(ctx context.Context, base Error) (*api.Secret, string, error) {
	invalid := func(detail string, err error) error {
		e := base
		e.Kind, e.Detail, e.Err = KindInvalid, detail, err
		return &e
	}
	if err := ctx.Err(); err != nil {
		return nil, "", classify(base, err)
	}
	var method api.AuthMethod
	switch c.method {
	case MethodToken:
		return c.tokenLogin(ctx, base)
	case MethodAppRole:
		a := c.cfg.Auth
		if a.RoleID == "" {
			return nil, "", invalid("auth.role_id is empty", ErrInvalid)
		}
		if a.SecretIDFile == "" {
			return nil, "", invalid("auth.secret_id_file is empty", ErrInvalid)
		}
		if err := checkNonEmptyFile("secret_id_file", a.SecretIDFile); err != nil {
			return nil, "", invalid(err.Error(), err)
		}
		m, err := approle.NewAppRoleAuth(a.RoleID, &approle.SecretID{FromFile: a.SecretIDFile}, approle.WithMountPath(c.mount))
		if err != nil {
			return nil, "", invalid("set up approle login: "+err.Error(), err)
		}
		method = m
	case MethodKubernetes:
		a := c.cfg.Auth
		jwtFile := a.JWTFile
		if jwtFile == "" {
			jwtFile = config.DefaultJWTFile
		}
		if a.Role == "" {
			return nil, "", invalid("auth.role is empty", ErrInvalid)
		}
		if err := checkNonEmptyFile("jwt_file", jwtFile); err != nil {
			return nil, "", invalid(err.Error(), err)
		}
		m, err := kubernetes.NewKubernetesAuth(a.Role,
			kubernetes.WithServiceAccountTokenPath(jwtFile),
			kubernetes.WithMountPath(c.mount))
		if err != nil {
			return nil, "", invalid("set up kubernetes login: "+err.Error(), err)
		}
		method = m
	default:
		return nil, "", invalid(fmt.Sprintf("unknown auth method %q", c.method), ErrInvalid)
	}

	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	sec, err := method.Login(rctx, c.loginAPI)
	if err != nil {
		c.observe(OpLogin, ResultError)
		e := classify(base, err)
		if e.Kind == KindUnauthenticated && strings.Contains(e.Detail, "permission denied") {
			e.Detail += fmt.Sprintf(" (is the %s auth method enabled at auth/%s?)", c.method, c.mount)
		}
		return nil, "", e
	}
	c.observe(OpLogin, ResultOK)
	if sec == nil || sec.Auth == nil || sec.Auth.ClientToken == "" {
		e := base
		e.Kind, e.Detail = KindOther, "vault answered the login without a token"
		return nil, "", &e
	}
	return sec, sec.Auth.ClientToken, nil
}

// tokenLogin takes the token from auth.token_file or $VAULT_TOKEN and checks
// it with a look-up of itself.
func (c *Client) tokenLogin(ctx context.Context, base Error) (*api.Secret, string, error) {
	invalid := func(detail string, err error) error {
		e := base
		e.Kind, e.Detail, e.Err = KindInvalid, detail, err
		return &e
	}
	var token string
	if f := c.cfg.Auth.TokenFile; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, "", invalid("read token_file: "+err.Error(), err)
		}
		token = strings.TrimSpace(string(b))
		if token == "" {
			return nil, "", invalid(fmt.Sprintf("token_file %s is empty", f), ErrInvalid)
		}
	} else {
		token = strings.TrimSpace(c.getenv("VAULT_TOKEN"))
		if token == "" {
			return nil, "", invalid("no token: auth.token_file is not set and VAULT_TOKEN is empty", ErrInvalid)
		}
	}
	c.loginAPI.SetToken(token)
	defer c.loginAPI.ClearToken()
	sec, err := c.lookupSelf(ctx, c.loginAPI)
	if err != nil {
		e := classify(base, err)
		if e.Kind == KindUnauthenticated {
			e.Detail = "token is invalid, expired or revoked (" + e.Detail + ")"
		}
		return nil, "", e
	}
	return sec, token, nil
}

// lookupSelf looks up the token of client, observed as a login request.
func (c *Client) lookupSelf(ctx context.Context, client *api.Client) (*api.Secret, error) {
	rctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	sec, err := client.Auth().Token().LookupSelfWithContext(rctx)
	if err != nil {
		c.observe(OpLogin, ResultError)
		return nil, err
	}
	c.observe(OpLogin, ResultOK)
	if sec == nil {
		return nil, errors.New("token look-up answered nothing")
	}
	return sec, nil
}

// checkNonEmptyFile reports a file, named by its setting, that cannot be
// read or is empty. The contents are not kept.
func checkNonEmptyFile(setting, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", setting, err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return fmt.Errorf("%s %s is empty", setting, path)
	}
	return nil
}

// Authenticated reports whether the last login succeeded and the token has
// not since been found invalid.
func (c *Client) Authenticated() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.authenticated
}

// AuthInfo returns whether the token of the last successful login is
// renewable and its TTL as Vault reported it at login (0: never expires, or
// no login yet).
func (c *Client) AuthInfo() (renewable bool, ttl time.Duration) {
	c.mu.Lock()
	sec := c.authSecret
	c.mu.Unlock()
	return authInfo(sec)
}

func authInfo(sec *api.Secret) (bool, time.Duration) {
	if sec == nil {
		return false, 0
	}
	renewable, err := sec.TokenIsRenewable()
	if err != nil {
		renewable = false
	}
	ttl, err := sec.TokenTTL()
	if err != nil {
		ttl = 0
	}
	return renewable, ttl
}

// generation returns the login generation and whether the client is
// authenticated.
func (c *Client) generation() (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen, c.authenticated
}

// ensureLogin logs in unless the client is authenticated.
func (c *Client) ensureLogin(ctx context.Context) error {
	if _, ok := c.generation(); ok {
		return nil
	}
	defer c.notifyAuth() // after the unlock
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	if _, ok := c.generation(); ok {
		return nil
	}
	return c.loginLocked(ctx)
}

// changedSince reports whether a login succeeded since generation seen.
func (c *Client) changedSince(seen uint64) bool {
	gen, _ := c.generation()
	return gen != seen
}

// relogin logs in again unless another login succeeded since generation seen.
func (c *Client) relogin(ctx context.Context, seen uint64) error {
	defer c.notifyAuth() // after the unlock
	c.loginMu.Lock()
	defer c.loginMu.Unlock()
	if gen, ok := c.generation(); ok && gen != seen {
		return nil
	}
	return c.loginLocked(ctx)
}

// markInvalid records that the token of login generation seen is no longer
// valid.
func (c *Client) markInvalid(seen uint64) {
	defer c.notifyAuth() // after the unlock
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen == seen && c.authenticated {
		c.authenticated = false
		c.signalLocked()
	}
}

// signalLocked wakes whoever waits for the login state to change (see
// loginState); c.mu is held.
func (c *Client) signalLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// notifyAuth passes the current state to Options.OnAuth unless it was the
// last state passed. Callers hold none of the client's locks.
func (c *Client) notifyAuth() {
	if c.onAuth == nil {
		return
	}
	c.notifyMu.Lock()
	defer c.notifyMu.Unlock()
	if now := c.Authenticated(); !c.notifiedOnce || now != c.notified {
		c.notifiedOnce, c.notified = true, now
		c.onAuth(now)
	}
}
