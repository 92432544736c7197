package providertest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"time"
)

// Steps of an SMTP session an SMTPFault can answer.
const (
	SMTPGreeting = "GREETING" // the server's first reply
	SMTPEHLO     = "EHLO"
	SMTPSTARTTLS = "STARTTLS"
	SMTPAUTH     = "AUTH"
)

// SMTPFault is a misbehaviour queued with SMTPServer.Inject. The first
// queued fault whose Step matches answers it and is used up.
type SMTPFault struct {
	Step  string        // SMTPGreeting, SMTPEHLO, SMTPSTARTTLS or SMTPAUTH
	Times int           // sessions' steps it answers; 0 = 1; negative = until cleared
	Delay time.Duration // wait before answering (or before going on when Code is 0)
	Code  int           // answer this reply code instead (421, 454, 535, ...); a 421 closes the connection
	Text  string        // the reply's text; default a usual one for Code
}

// SMTPServerOptions configure an SMTPServer.
type SMTPServerOptions struct {
	// ImplicitTLS speaks TLS from the first byte, as on port 465, and
	// offers no STARTTLS.
	ImplicitTLS bool
	// NoSTARTTLS offers no STARTTLS (and refuses the command): a server
	// that would take a password in clear text.
	NoSTARTTLS bool
	// Mechanisms are the AUTH mechanisms offered, default PLAIN and LOGIN.
	// AUTH is offered before TLS too, so that a client that would log in
	// in clear text can.
	Mechanisms []string
	// EchoCredentials makes a refusal quote what the client sent: the
	// username, the password and the base64 of the AUTH exchange (a
	// careless server, for the sentinel tests).
	EchoCredentials bool
}

// SMTPServer is an SMTP server on 127.0.0.1 over real TCP, with a real
// STARTTLS (or TLS from the first byte) with a self-signed certificate
// for 127.0.0.1, ::1 and localhost. It takes EHLO/HELO, STARTTLS, AUTH
// PLAIN and LOGIN (RFC 4954 replies: 235 for a known username and
// password, 535 5.7.8 otherwise, 504 for another mechanism, 501 for a
// cancelled exchange), NOOP, RSET and QUIT. MAIL, RCPT and DATA are
// recorded (MailCommands) and refused: it never takes mail.
type SMTPServer struct {
	opts SMTPServerOptions
	ln   net.Listener
	tls  *tls.Config
	cert []byte // PEM
	pool *x509.CertPool
	wg   sync.WaitGroup
	done chan struct{} // closed by Close: ends a fault's delay

	mu         sync.Mutex
	users      map[string]string // username -> password
	fault      []SMTPFault
	conns      map[net.Conn]bool
	closed     bool
	commands   []string // verbs received, in order, over every session
	mail       int      // MAIL, RCPT and DATA commands received
	clearAuth  int      // AUTH commands received without TLS
	authOK     int      // logins accepted
	authFailed int      // logins refused
}

// NewSMTPServer starts an SMTP server on 127.0.0.1 with no users. It
// panics when it cannot (as httptest.NewServer does).
func NewSMTPServer(opts SMTPServerOptions) *SMTPServer {
	if len(opts.Mechanisms) == 0 {
		opts.Mechanisms = []string{"PLAIN", "LOGIN"}
	}
	certPEM, cert, err := selfSigned()
	if err != nil {
		panic("providertest: SMTP certificate: " + err.Error())
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic("providertest: SMTP listen: " + err.Error())
	}
	s := &SMTPServer{
		opts: opts, ln: ln, cert: certPEM, pool: pool,
		tls:   &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		users: map[string]string{}, conns: map[net.Conn]bool{}, done: make(chan struct{}),
	}
	s.wg.Add(1)
	go s.accept()
	return s
}

// selfSigned makes a self-signed ECDSA certificate for 127.0.0.1, ::1 and
// localhost, valid for a day.
func selfSigned() ([]byte, tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "providertest SMTP"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	return certPEM, cert, err
}

// Host is the server's host, 127.0.0.1.
func (s *SMTPServer) Host() string { return "127.0.0.1" }

// Port is the server's port, as the port setting writes it.
func (s *SMTPServer) Port() string {
	_, port, _ := net.SplitHostPort(s.ln.Addr().String())
	return port
}

// CertPEM is the PEM of the server's self-signed certificate (the file of
// smtp_ca_cert).
func (s *SMTPServer) CertPEM() []byte { return s.cert }

// RootCAs is a pool holding the server's certificate.
func (s *SMTPServer) RootCAs() *x509.CertPool { return s.pool }

// Close stops the server: it closes the listener and every session, and
// waits for them to end.
func (s *SMTPServer) Close() {
	s.mu.Lock()
	if !s.closed {
		close(s.done)
	}
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	_ = s.ln.Close()
	s.wg.Wait()
}

// AddUser makes username log in with password (replacing its password).
func (s *SMTPServer) AddUser(username, password string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[username] = password
}

// Inject queues f.
func (s *SMTPServer) Inject(f SMTPFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = append(s.fault, f)
}

// Commands are the verbs the server received (EHLO, STARTTLS, AUTH, QUIT,
// ...), in order, over every session.
func (s *SMTPServer) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

// MailCommands is how many MAIL, RCPT and DATA commands the server
// received: a check sends none.
func (s *SMTPServer) MailCommands() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mail
}

// ClearTextAuth is how many AUTH commands arrived on a connection without
// TLS.
func (s *SMTPServer) ClearTextAuth() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clearAuth
}

// Logins are the logins the server accepted and refused.
func (s *SMTPServer) Logins() (accepted, refused int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authOK, s.authFailed
}

// take returns the first fault of step and uses it up.
func (s *SMTPServer) take(step string) (SMTPFault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.fault {
		if f.Step != step {
			continue
		}
		switch {
		case f.Times < 0:
		case f.Times <= 1:
			s.fault = append(s.fault[:i:i], s.fault[i+1:]...)
		default:
			s.fault[i].Times--
		}
		return f, true
	}
	return SMTPFault{}, false
}

func (s *SMTPServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.session(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// session is one SMTP session; it returns when the client quits, the
// connection fails or idles for a minute, or the server closes.
func (s *SMTPServer) session(raw net.Conn) {
	conn := raw
	defer func() { _ = conn.Close() }()
	if s.opts.ImplicitTLS {
		tc := tls.Server(raw, s.tls)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if tc.Handshake() != nil {
			return
		}
		conn = tc
	}
	tp := textproto.NewConn(conn)
	isTLS := s.opts.ImplicitTLS
	// reply writes one reply, of several lines when text has several.
	reply := func(code int, text string) bool {
		lines := strings.Split(text, "\n")
		for i, l := range lines {
			sep := "-"
			if i == len(lines)-1 {
				sep = " "
			}
			if err := tp.PrintfLine("%d%s%s", code, sep, l); err != nil {
				return false
			}
		}
		return true
	}
	// faulty applies the fault of step, if any; it reports whether the
	// fault answered the step (or ended the session).
	faulty := func(step string) (answered, end bool) {
		f, ok := s.take(step)
		if !ok {
			return false, false
		}
		if f.Delay > 0 {
			select {
			case <-time.After(f.Delay):
			case <-s.done:
				return true, true
			}
		}
		if f.Code == 0 {
			return false, false
		}
		text := f.Text
		if text == "" {
			text = smtpText(f.Code)
		}
		if !reply(f.Code, text) || f.Code == 421 {
			return true, true
		}
		return true, false
	}

	if answered, _ := faulty(SMTPGreeting); answered {
		return
	}
	if !reply(220, "smtp.providertest ESMTP ready") {
		return
	}
	for {
		_ = conn.SetDeadline(time.Now().Add(time.Minute))
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		s.mu.Lock()
		s.commands = append(s.commands, verb)
		s.mu.Unlock()
		switch verb {
		case "EHLO", "HELO":
			if answered, end := faulty(SMTPEHLO); end {
				return
			} else if answered {
				continue
			}
			if verb == "HELO" {
				reply(250, "smtp.providertest")
				continue
			}
			ext := []string{"smtp.providertest greets " + arg, "PIPELINING", "8BITMIME"}
			if !isTLS && !s.opts.NoSTARTTLS && !s.opts.ImplicitTLS {
				ext = append(ext, "STARTTLS")
			}
			ext = append(ext, "AUTH "+strings.Join(s.opts.Mechanisms, " "))
			reply(250, strings.Join(ext, "\n"))
		case "STARTTLS":
			if isTLS || s.opts.NoSTARTTLS || s.opts.ImplicitTLS {
				reply(502, "5.5.1 STARTTLS not available")
				continue
			}
			if answered, end := faulty(SMTPSTARTTLS); end {
				return
			} else if answered {
				continue
			}
			if !reply(220, "2.0.0 Ready to start TLS") {
				return
			}
			tc := tls.Server(conn, s.tls)
			if tc.Handshake() != nil {
				return
			}
			conn, isTLS = tc, true
			tp = textproto.NewConn(conn)
		case "AUTH":
			if !isTLS {
				s.mu.Lock()
				s.clearAuth++
				s.mu.Unlock()
			}
			if answered, end := faulty(SMTPAUTH); end {
				return
			} else if answered {
				continue
			}
			if !s.auth(tp, arg, reply) {
				return
			}
		case "MAIL", "RCPT", "DATA":
			s.mu.Lock()
			s.mail++
			s.mu.Unlock()
			reply(554, "5.7.1 providertest takes no mail")
		case "NOOP", "RSET":
			reply(250, "2.0.0 OK")
		case "QUIT":
			reply(221, "2.0.0 Bye")
			return
		default:
			reply(502, "5.5.2 Command not recognized")
		}
	}
}

// auth runs one AUTH exchange; false when the connection failed.
func (s *SMTPServer) auth(tp *textproto.Conn, arg string, reply func(int, string) bool) bool {
	mech, initial, _ := strings.Cut(arg, " ")
	mech = strings.ToUpper(mech)
	offered := false
	for _, m := range s.opts.Mechanisms {
		offered = offered || strings.EqualFold(m, mech)
	}
	if !offered || (mech != "PLAIN" && mech != "LOGIN") {
		return reply(504, "5.5.4 Unrecognized authentication type")
	}
	var sent []string // what the client sent, base64 as sent
	// ask sends a 334 challenge and returns the decoded answer.
	ask := func(challenge string) (string, bool, error) {
		if !reply(334, challenge) {
			return "", false, errors.New("write")
		}
		line, err := tp.ReadLine()
		if err != nil {
			return "", false, err
		}
		if line == "*" {
			return "", false, nil
		}
		sent = append(sent, line)
		b, err := base64.StdEncoding.DecodeString(line)
		return string(b), err == nil, nil
	}
	var user, pass string
	switch mech {
	case "PLAIN":
		resp := initial
		if resp == "" {
			r, ok, err := ask("")
			if err != nil {
				return false
			}
			if !ok {
				return reply(501, "5.0.0 Authentication cancelled or not base64")
			}
			resp = base64.StdEncoding.EncodeToString([]byte(r))
		} else {
			sent = append(sent, resp)
		}
		b, err := base64.StdEncoding.DecodeString(resp)
		parts := strings.Split(string(b), "\x00")
		if err != nil || len(parts) != 3 {
			return reply(501, "5.5.2 Cannot decode the AUTH PLAIN response")
		}
		user, pass = parts[1], parts[2]
	case "LOGIN":
		var ok bool
		var err error
		if initial != "" {
			b, derr := base64.StdEncoding.DecodeString(initial)
			user, ok = string(b), derr == nil
			sent = append(sent, initial)
		} else {
			user, ok, err = ask(base64.StdEncoding.EncodeToString([]byte("Username:")))
		}
		if err != nil {
			return false
		}
		if ok {
			pass, ok, err = ask(base64.StdEncoding.EncodeToString([]byte("Password:")))
			if err != nil {
				return false
			}
		}
		if !ok {
			return reply(501, "5.0.0 Authentication cancelled or not base64")
		}
	}
	s.mu.Lock()
	want, known := s.users[user]
	good := known && want == pass
	if good {
		s.authOK++
	} else {
		s.authFailed++
	}
	s.mu.Unlock()
	if good {
		return reply(235, "2.7.0 Authentication successful")
	}
	text := "5.7.8 Authentication credentials invalid"
	if s.opts.EchoCredentials {
		text += fmt.Sprintf(" for %q with password %q (sent %s)", user, pass, strings.Join(sent, " "))
	}
	return reply(535, text)
}

// smtpText is the usual text of a fault's reply code.
func smtpText(code int) string {
	switch code {
	case 421:
		return "4.3.2 Service not available, closing transmission channel"
	case 454:
		return "4.7.0 Temporary authentication failure"
	case 451:
		return "4.3.0 Local error in processing"
	case 530:
		return "5.7.0 Authentication required"
	case 534:
		return "5.7.9 Authentication mechanism is too weak"
	case 535:
		return "5.7.8 Authentication credentials invalid"
	}
	return fmt.Sprintf("%d.0.0 providertest fault", code/100)
}
