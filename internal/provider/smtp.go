package provider

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/smtp"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ocamba-rotator/rotator/internal/secret"
)

// SMTP's Hood provider name and defaults.
const (
	SMTPProvider        = "custom_email_provider"
	SMTPImplicitTLSPort = "465" // the port spoken with TLS from the first byte (RFC 8314)
	smtpDefaultTimeout  = 15 * time.Second
	smtpLocalName       = "localhost" // the name rotator gives in EHLO
)

// Steps of an SMTP check, the Op of its errors.
const (
	smtpConnect  = "connect"
	smtpGreeting = "greeting"
	smtpEHLO     = "EHLO"
	smtpSTARTTLS = "STARTTLS"
	smtpAUTH     = "AUTH"
)

// ErrSMTPNoTLS is wrapped by the error of a check that found no way to
// encrypt the connection before AUTH (no STARTTLS offered on a port other
// than SMTPImplicitTLSPort): the password is never sent in clear text.
var ErrSMTPNoTLS = errors.New("no TLS: the password is never sent in clear text")

// SMTPError is an SMTP reply that is neither a success, a refused login
// (a *RefusedError) nor "not now" (a 4xx reply: an *UnavailableError): a
// 5xx the check cannot go on after, such as an AUTH mechanism the server
// turns down. Reason is the server's text, scrubbed.
type SMTPError struct {
	Op     string // the step: "greeting", "EHLO", "STARTTLS", "AUTH"
	Addr   string // host:port
	Code   int    // the SMTP reply code
	Reason string // the server's text, clipped; never a credential
}

func (e *SMTPError) Error() string {
	s := fmt.Sprintf("%s: %s: %s: SMTP %d", SMTPProvider, e.Addr, e.Op, e.Code)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// SMTPOptions configure an SMTP client. Zero values take the defaults
// named in the comments.
type SMTPOptions struct {
	// Host is the mail server's host name or IP address, without a port
	// (the port is the integration's port setting); required.
	Host string
	// TLSConfig is cloned; its ServerName defaults to Host, its RootCAs to
	// the system's roots, its MinVersion to TLS 1.2. Tests give the CA of
	// their server here.
	TLSConfig *tls.Config
	// ImplicitTLSPort is the port spoken with TLS from the first byte;
	// default SMTPImplicitTLSPort. Tests, whose servers listen on a port
	// of their own, set it.
	ImplicitTLSPort string
	Timeout         time.Duration // the whole check; default 15s
	Logger          *slog.Logger  // default discards; logs carry no credential
}

// SMTP asks a mail server whether it accepts a username and password,
// without sending mail: connect, greeting, EHLO, STARTTLS (or TLS from the
// first byte on port 465), AUTH PLAIN (or LOGIN when PLAIN is not
// offered), QUIT. AUTH is only ever sent over TLS with a verified
// certificate. It is safe for concurrent use.
type SMTP struct {
	host         string
	tls          *tls.Config
	implicitPort string
	timeout      time.Duration
	log          *slog.Logger
}

// NewSMTP builds an SMTP client of opts.Host.
func NewSMTP(opts SMTPOptions) (*SMTP, error) {
	if msg := CheckSMTPHost(opts.Host); msg != "" {
		return nil, fmt.Errorf("%s: host: %s", SMTPProvider, msg)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if opts.TLSConfig != nil {
		cfg = opts.TLSConfig.Clone()
		cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	}
	if cfg.ServerName == "" {
		cfg.ServerName = opts.Host
	}
	c := &SMTP{host: opts.Host, tls: cfg, implicitPort: opts.ImplicitTLSPort, timeout: opts.Timeout, log: orDiscard(opts.Logger)}
	if c.implicitPort == "" {
		c.implicitPort = SMTPImplicitTLSPort
	}
	if c.timeout <= 0 {
		c.timeout = smtpDefaultTimeout
	}
	return c, nil
}

// CheckSMTPHost returns what is wrong with host as the host of an SMTP
// server (a host name or an IP address, with no scheme, port or
// brackets), or "".
func CheckSMTPHost(host string) string {
	switch {
	case host == "":
		return "required"
	case strings.Contains(host, "://"):
		return "must be a host name or IP address without a scheme, such as smtp.example.com"
	case strings.HasPrefix(host, "["):
		return "write an IPv6 address without brackets, such as ::1"
	case net.ParseIP(host) != nil:
		return ""
	}
	if _, _, err := net.SplitHostPort(host); err == nil {
		return "must not hold a port: the port is the integration's port setting"
	}
	if !validHostName(host) {
		return "must be a host name (letters, digits, '-' and '.') or an IP address, such as smtp.example.com"
	}
	return ""
}

// validHostName reports whether s is a DNS host name: dot-separated
// labels of 1 to 63 letters, digits and '-', not starting or ending with
// '-', at most 253 bytes, with an optional final dot.
func validHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := range len(label) {
			c := label[i]
			if c != '-' && (c < '0' || c > '9') && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') {
				return false
			}
		}
	}
	return true
}

// Check logs in to the server on port with username and password and logs
// out: nil when the server accepts the login, a *RefusedError
// (errors.Is(err, ErrRefused)) for a 535, 534 or 530 reply to AUTH, an
// *UnavailableError for a 4xx reply at any step, an error wrapping
// ErrSMTPNoTLS when the server offers no STARTTLS on a port other than
// 465 (no AUTH is sent then), an *SMTPError for another 5xx, another error
// when the server could not be reached or its certificate is not trusted.
// No mail is sent (no MAIL, RCPT or DATA). No error carries the password
// or a base64 form of it.
func (c *SMTP) Check(ctx context.Context, port, username string, password secret.Value) error {
	start := time.Now()
	mech, err := c.check(ctx, port, username, password)
	attrs := []any{"provider", SMTPProvider, "host", c.host, "port", port, "duration", time.Since(start)}
	if mech != "" {
		attrs = append(attrs, "mechanism", mech)
	}
	if err != nil {
		c.log.DebugContext(ctx, "provider check failed", append(attrs, "error", err.Error())...)
		return err
	}
	c.log.DebugContext(ctx, "provider check passed", attrs...)
	return nil
}

// check is Check without its log line; it returns the AUTH mechanism used.
func (c *SMTP) check(ctx context.Context, port, username string, password secret.Value) (string, error) {
	pass := password.Reveal()
	switch {
	case username == "":
		return "", fmt.Errorf("%s: check: empty username", SMTPProvider)
	case pass == "":
		return "", fmt.Errorf("%s: check: empty password", SMTPProvider)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("%s: check: port %q is not a port number (1 to 65535)", SMTPProvider, scrub(port, pass))
	}
	addr := net.JoinHostPort(c.host, port)
	secrets := smtpSecrets(username, pass)
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	// fail makes the error of step: the server's replies sorted into
	// refused, unavailable and others, the rest wrapped with the context's
	// error when it ended the check; scrubbed of the password either way.
	fail := func(step string, err error) error {
		var te *textproto.Error
		if errors.As(err, &te) {
			reason := smtpReason(te.Msg, pass, secrets)
			switch {
			case step == smtpAUTH && (te.Code == 535 || te.Code == 534 || te.Code == 530):
				return &RefusedError{Provider: SMTPProvider, Reason: strings.TrimSpace(strconv.Itoa(te.Code) + " " + reason)}
			case te.Code >= 400 && te.Code < 500:
				return &UnavailableError{Provider: SMTPProvider, Op: step, Code: te.Code, Reason: reason}
			default:
				return &SMTPError{Op: step, Addr: addr, Code: te.Code, Reason: reason}
			}
		}
		err = scrubErr(err, secrets...)
		cerr := ctx.Err()
		var ne net.Error
		if cerr == nil && errors.As(err, &ne) && ne.Timeout() {
			// The connection's deadline is the context's: it may pass
			// a moment before the context's own timer fires.
			cerr = context.DeadlineExceeded
		}
		if cerr != nil {
			return fmt.Errorf("%s: %s: %s: %w (%w)", SMTPProvider, addr, step, cerr, err)
		}
		return fmt.Errorf("%s: %s: %s: %w", SMTPProvider, addr, step, err)
	}

	implicit := port == c.implicitPort
	dialer := &net.Dialer{}
	var conn net.Conn
	var err error
	if implicit {
		conn, err = (&tls.Dialer{NetDialer: dialer, Config: c.tls}).DialContext(ctx, "tcp", addr)
	} else {
		conn, err = dialer.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return "", fail(smtpConnect, err)
	}
	// The context bounds every read and write: its deadline is the
	// connection's, and its end (a cancel) unblocks them at once.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl) // a closed connection fails the next step
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	cl, err := smtp.NewClient(conn, c.host) // reads the greeting
	if err != nil {
		_ = conn.Close()
		return "", fail(smtpGreeting, err)
	}
	defer func() { _ = cl.Close() }() // after QUIT: already closed
	if err := cl.Hello(smtpLocalName); err != nil {
		return "", fail(smtpEHLO, err)
	}
	if !implicit {
		if ok, _ := cl.Extension("STARTTLS"); !ok {
			return "", fmt.Errorf("%s: %s: the server offers no STARTTLS (and port %s is not the implicit TLS port %s): %w",
				SMTPProvider, addr, port, c.implicitPort, ErrSMTPNoTLS)
		}
		if err := cl.StartTLS(c.tls); err != nil {
			return "", fail(smtpSTARTTLS, err)
		}
	}
	if _, ok := cl.TLSConnectionState(); !ok { // cannot happen: kept as the last guard before AUTH
		return "", fmt.Errorf("%s: %s: %w", SMTPProvider, addr, ErrSMTPNoTLS)
	}
	ok, offered := cl.Extension("AUTH")
	if !ok {
		return "", fmt.Errorf("%s: %s: %s: the server offers no AUTH", SMTPProvider, addr, smtpAUTH)
	}
	mechs := strings.Fields(strings.ToUpper(offered))
	auth := &smtpAuth{user: username, pass: pass}
	switch {
	case slices.Contains(mechs, "PLAIN"):
		auth.mech = "PLAIN"
	case slices.Contains(mechs, "LOGIN"):
		auth.mech = "LOGIN"
	default:
		return "", fmt.Errorf("%s: %s: %s: the server offers %q, want PLAIN or LOGIN", SMTPProvider, addr, smtpAUTH, scrub(offered, secrets...))
	}
	if err := cl.Auth(auth); err != nil {
		return auth.mech, fail(smtpAUTH, err)
	}
	// The login was accepted: a failed QUIT changes nothing.
	if err := cl.Quit(); err != nil {
		c.log.DebugContext(ctx, "smtp QUIT failed after the login was accepted",
			"provider", SMTPProvider, "host", c.host, "port", port, "error", scrubErr(err, secrets...).Error())
	}
	return auth.mech, nil
}

// smtpAuth is AUTH PLAIN (RFC 4616, the credentials in the initial
// response) or AUTH LOGIN (the username, then the password, each answering
// a 334 challenge). Start refuses a connection without TLS.
type smtpAuth struct {
	mech, user, pass string
	step             int // LOGIN: challenges answered
}

func (a *smtpAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS {
		return "", nil, ErrSMTPNoTLS
	}
	if a.mech == "PLAIN" {
		return a.mech, []byte("\x00" + a.user + "\x00" + a.pass), nil
	}
	return a.mech, nil, nil
}

func (a *smtpAuth) Next(_ []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	a.step++
	switch {
	case a.mech == "LOGIN" && a.step == 1:
		return []byte(a.user), nil
	case a.mech == "LOGIN" && a.step == 2:
		return []byte(a.pass), nil
	}
	return nil, fmt.Errorf("unexpected challenge %d of AUTH %s", a.step, a.mech)
}

// smtpSecrets are the forms of the password a server could echo: the
// password, the base64 of AUTH PLAIN's initial response, and the base64 of
// the password at each of the three alignments it can have inside a
// longer base64 text (standard and URL alphabets, the characters shared
// with the neighbouring bytes left out), the shortest ones aside.
func smtpSecrets(user, pass string) []string {
	plain := []byte("\x00" + user + "\x00" + pass)
	out := []string{
		pass,
		base64.StdEncoding.EncodeToString(plain), base64.RawStdEncoding.EncodeToString(plain),
		base64.StdEncoding.EncodeToString([]byte(pass)),
	}
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		for k := range 3 {
			b := append(make([]byte, k), pass...)
			s := enc.EncodeToString(b)
			from, to := (8*k+5)/6, 8*len(b)/6
			if to-from >= 4 && to <= len(s) {
				out = append(out, s[from:to])
			}
		}
	}
	// Longest first: a form inside another is redacted with it.
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(out)
}

// smtpReason is a server's reply text made safe to show: the password's
// forms redacted, every piece of the password of six bytes or more too,
// control characters blanked, clipped.
func smtpReason(msg, pass string, secrets []string) string {
	if len(msg) > 4*maxReason {
		msg = msg[:4*maxReason]
	}
	return scrub(scrubPieces(redact(msg, secrets...), pass))
}
