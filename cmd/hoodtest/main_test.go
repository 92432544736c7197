package main

// An internal test: run is unexported, and a main package cannot be imported.

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunStopsOnCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"-listen", "127.0.0.1:0", "-token", "t", "-integrations", "1161=twilio_sms"}, &stdout, &stderr)
	if code != exitOK {
		t.Fatalf("exit code: got %d, want %d (stderr %s)", code, exitOK, stderr.String())
	}
	for _, want := range []string{`msg="hoodtest listening" url=http://127.0.0.1:`, `msg="hoodtest stopped"`} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout: got %q, want it to contain %q", stdout.String(), want)
		}
	}
}

func TestRunServes(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("first\n\n  second  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-token-file", tokenFile,
			"-integrations", "1161=twilio_sms, 1162=sendgrid_email", "-provider-names", "sendgrid_email=SendGrid v3",
			"-burst", "-1", "-per-minute", "-1"}, pw, &stderr)
		pw.Close()
	}()

	lines := bufio.NewScanner(pr)
	var url string
	for url == "" && lines.Scan() {
		if _, after, ok := strings.Cut(lines.Text(), "url="); ok {
			url, _, _ = strings.Cut(after, " ")
		}
	}
	if url == "" {
		t.Fatalf("no listening URL printed (stderr %s)", stderr.String())
	}
	logged := make(chan string, 1)
	go func() {
		var rest strings.Builder
		for lines.Scan() {
			rest.WriteString(lines.Text() + "\n")
		}
		logged <- rest.String()
	}()

	tests := []struct {
		token, path string
		want        int
		provider    string // provider.name in the answer, when set
	}{
		{"first", "/v1/hood/integrations/1161", http.StatusOK, `"name":"twilio"`},
		{"second", "/v1/hood/integrations/1162", http.StatusOK, `"name":"SendGrid v3"`},
		{"third", "/v1/hood/integrations/1161", http.StatusUnauthorized, ""},
		{"first", "/v1/hood/integrations/1163", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url+tt.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tt.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", tt.path, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatalf("GET %s: %v", tt.path, err)
		}
		if resp.StatusCode != tt.want {
			t.Errorf("GET %s with %s: got %d, want %d", tt.path, tt.token, resp.StatusCode, tt.want)
		}
		if tt.provider != "" && !strings.Contains(string(body), tt.provider) {
			t.Errorf("GET %s: got %s, want provider %s", tt.path, body, tt.provider)
		}
	}

	cancel()
	if code := <-done; code != exitOK {
		t.Errorf("exit code: got %d, want %d (stderr %s)", code, exitOK, stderr.String())
	}
	out := <-logged
	if got := strings.Count(out, `msg="hood request"`); got != len(tests) {
		t.Errorf("request log lines: got %d, want %d:\n%s", got, len(tests), out)
	}
	if strings.Contains(out, "first") || strings.Contains(out, "second") {
		t.Errorf("log: got a token in\n%s", out)
	}
}

func TestRunUsageErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"no token", []string{"-listen", "127.0.0.1:0"}, exitUsage},
		{"both tokens", []string{"-listen", "127.0.0.1:0", "-token", "t", "-token-file", empty}, exitUsage},
		{"unknown flag", []string{"-token", "t", "-colour"}, exitUsage},
		{"extra argument", []string{"-token", "t", "serve"}, exitUsage},
		{"zero burst", []string{"-token", "t", "-burst", "0"}, exitUsage},
		{"integration without provider", []string{"-listen", "127.0.0.1:0", "-token", "t", "-integrations", "1161"}, exitUsage},
		{"duplicate integration", []string{"-listen", "127.0.0.1:0", "-token", "t", "-integrations", "1=telegram,1=telegram"}, exitUsage},
		{"unknown provider", []string{"-listen", "127.0.0.1:0", "-token", "t", "-integrations", "1161=pigeon_post"}, exitUsage},
		{"provider name of an unknown provider", []string{"-listen", "127.0.0.1:0", "-token", "t", "-provider-names", "pigeon_post=Pigeon"}, exitUsage},
		{"provider name without =", []string{"-listen", "127.0.0.1:0", "-token", "t", "-provider-names", "telegram"}, exitUsage},
		{"provider name twice", []string{"-listen", "127.0.0.1:0", "-token", "t", "-provider-names", "telegram=a,telegram=b"}, exitUsage},
		{"id not digits", []string{"-listen", "127.0.0.1:0", "-token", "t", "-integrations", "abc=telegram"}, exitUsage},
		{"missing token file", []string{"-listen", "127.0.0.1:0", "-token-file", missing}, exitUsage},
		{"empty token file", []string{"-listen", "127.0.0.1:0", "-token-file", empty}, exitUsage},
		{"bad listen address", []string{"-listen", "127.0.0.1:notaport", "-token", "t"}, exitError},
		{"help", []string{"-h"}, exitOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if got := run(t.Context(), tt.args, &stdout, &stderr); got != tt.want {
				t.Errorf("exit code: got %d, want %d (stderr %s)", got, tt.want, stderr.String())
			}
			if tt.want != exitOK && stderr.Len() == 0 {
				t.Errorf("stderr: got nothing, want the reason")
			}
		})
	}
}
