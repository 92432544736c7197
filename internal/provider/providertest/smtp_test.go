package providertest

import (
	"crypto/tls"
	"net"
	"net/smtp"
	"slices"
	"testing"
)

// The server records MAIL, RCPT and DATA and AUTH without TLS, so that a
// test asserting there were none asserts something.
func TestSMTPServerRecords(t *testing.T) {
	s := NewSMTPServer(SMTPServerOptions{NoSTARTTLS: true})
	defer s.Close()
	s.AddUser("u", "p")
	c, err := smtp.Dial(net.JoinHostPort(s.Host(), s.Port()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered with NoSTARTTLS")
	}
	// net/smtp's PlainAuth sends in clear text to localhost only, which
	// 127.0.0.1 is.
	if err := c.Auth(smtp.PlainAuth("", "u", "p", "127.0.0.1")); err != nil {
		t.Fatalf("AUTH PLAIN: got %v, want nil", err)
	}
	if err := c.Mail("a@example.com"); err == nil {
		t.Error("MAIL: got nil, want a 554 refusal")
	}
	_ = c.Rcpt("b@example.com")
	if got := s.MailCommands(); got != 2 {
		t.Errorf("MailCommands: got %d, want 2", got)
	}
	if got := s.ClearTextAuth(); got != 1 {
		t.Errorf("ClearTextAuth: got %d, want 1", got)
	}
	if ok, refused := s.Logins(); ok != 1 || refused != 0 {
		t.Errorf("Logins: got %d accepted, %d refused, want 1, 0", ok, refused)
	}
}

// STARTTLS upgrades the session with the certificate RootCAs trusts, and
// the server offers STARTTLS no more once it is on.
func TestSMTPServerSTARTTLS(t *testing.T) {
	s := NewSMTPServer(SMTPServerOptions{})
	defer s.Close()
	c, err := smtp.Dial(net.JoinHostPort(s.Host(), s.Port()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(&tls.Config{RootCAs: s.RootCAs(), ServerName: s.Host()}); err != nil {
		t.Fatalf("STARTTLS: got %v, want nil", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered again over TLS")
	}
	// A failed AUTH makes net/smtp cancel ("*") and QUIT by itself.
	if err := c.Auth(smtp.PlainAuth("", "nobody", "x", s.Host())); err == nil {
		t.Error("AUTH of an unknown user: got nil, want 535")
	}
	if got := s.Commands(); !slices.Equal(got[:4], []string{"EHLO", "STARTTLS", "EHLO", "AUTH"}) {
		t.Errorf("commands: got %v, want EHLO STARTTLS EHLO AUTH ...", got)
	}
}
