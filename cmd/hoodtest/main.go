// Command hoodtest runs the Hood API test server (internal/hood/hoodtest)
// on its own, for demos: it listens on -listen, accepts the bearer token
// from -token or -token-file (one token a line; SIGHUP re-reads the file),
// serves the integrations of -integrations ("1161=twilio_sms,1162=sendgrid_email"),
// reports the provider names of -provider-names ("mailgun_email=Mailgun";
// by default the names rotator expects) and prints one log line per request to stdout, never a settings value.
// SIGINT or SIGTERM stops it cleanly.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/hood/hoodtest"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// shutdownTimeout bounds the graceful stop.
const shutdownTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is the parsed command line.
type config struct {
	listen       string
	token        string
	tokenFile    string
	integrations []integrationArg
	names        map[string]string // provider key -> provider.name reported
	burst        int
	perMinute    int
}

type integrationArg struct{ id, provider string }

// run serves until ctx is done and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseArgs(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "hoodtest: %v\n", err)
		return exitUsage
	}
	tokens, err := cfg.tokens()
	if err != nil {
		fmt.Fprintf(stderr, "hoodtest: %v\n", err)
		return exitUsage
	}
	logger := slog.New(slog.NewTextHandler(stdout, nil))
	srv, err := hoodtest.Start(hoodtest.Options{
		Addr:          cfg.listen,
		Tokens:        tokens,
		Burst:         cfg.burst,
		PerMinute:     cfg.perMinute,
		Logger:        logger,
		ProviderNames: cfg.names,
	})
	if err != nil {
		fmt.Fprintf(stderr, "hoodtest: %v\n", err)
		return exitError
	}
	for _, in := range cfg.integrations {
		if err := srv.AddIntegration(in.id, in.provider, nil); err != nil {
			_ = srv.Close()
			fmt.Fprintf(stderr, "hoodtest: %v\n", err)
			return exitUsage
		}
	}
	logger.Info("hoodtest listening", "url", srv.URL(), "integrations", len(cfg.integrations))

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-hup:
			if cfg.tokenFile == "" {
				continue
			}
			tokens, err := cfg.tokens()
			if err != nil {
				logger.Error("hoodtest: token file not reloaded", "error", err.Error())
				continue
			}
			srv.SetTokens(tokens...)
			logger.Info("hoodtest: tokens reloaded", "tokens", len(tokens))
		}
	}

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		fmt.Fprintf(stderr, "hoodtest: %v\n", err)
		_ = srv.Close()
		return exitError
	}
	logger.Info("hoodtest stopped")
	return exitOK
}

// parseArgs parses the command line.
func parseArgs(args []string, stderr io.Writer) (config, error) {
	var cfg config
	var integrations, names string
	fs := flag.NewFlagSet("hoodtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.listen, "listen", "127.0.0.1:8480", "listen address")
	fs.StringVar(&cfg.token, "token", "", "accepted bearer token")
	fs.StringVar(&cfg.tokenFile, "token-file", "", "file of accepted bearer tokens, one a line (re-read on SIGHUP)")
	fs.StringVar(&integrations, "integrations", "", `integrations to serve: "1161=twilio_sms,1162=sendgrid_email"`)
	fs.StringVar(&names, "provider-names", "", `provider.name to report per provider: "mailgun_email=Mailgun,telegram=Telegram"`)
	fs.IntVar(&cfg.burst, "burst", hoodtest.DefaultBurst, "max requests per second; negative = no limit")
	fs.IntVar(&cfg.perMinute, "per-minute", hoodtest.DefaultPerMinute, "max requests per minute; negative = no limit")
	if err := fs.Parse(args); err != nil {
		return config{}, fmt.Errorf("parse flags: %w", err)
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if (cfg.token == "") == (cfg.tokenFile == "") {
		return config{}, errors.New("exactly one of -token and -token-file is required")
	}
	if cfg.burst == 0 || cfg.perMinute == 0 {
		return config{}, errors.New("-burst and -per-minute must not be 0 (negative = no limit)")
	}
	ins, err := parseIntegrations(integrations)
	if err != nil {
		return config{}, err
	}
	cfg.integrations = ins
	if cfg.names, err = parseProviderNames(names); err != nil {
		return config{}, err
	}
	return cfg, nil
}

// parseProviderNames parses "mailgun_email=Mailgun,telegram=Telegram"; a
// name may be empty ("twilio_sms=").
func parseProviderNames(s string) (map[string]string, error) {
	out := make(map[string]string)
	for item := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(item) == "" {
			continue
		}
		key, name, ok := strings.Cut(item, "=")
		key, name = strings.TrimSpace(key), strings.TrimSpace(name)
		if !ok || key == "" {
			return nil, fmt.Errorf("-provider-names: %q is not provider=name", item)
		}
		if _, known := hood.LookupProvider(key); !known {
			return nil, fmt.Errorf("-provider-names: unknown provider %q", key)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("-provider-names: provider %s given twice", key)
		}
		out[key] = name
	}
	return out, nil
}

// parseIntegrations parses "1161=twilio_sms,1162=sendgrid_email".
func parseIntegrations(s string) ([]integrationArg, error) {
	var out []integrationArg
	seen := make(map[string]bool)
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		id, provider, ok := strings.Cut(item, "=")
		id, provider = strings.TrimSpace(id), strings.TrimSpace(provider)
		if !ok || id == "" || provider == "" {
			return nil, fmt.Errorf("-integrations: %q is not id=provider", item)
		}
		if seen[id] {
			return nil, fmt.Errorf("-integrations: id %s given twice", id)
		}
		seen[id] = true
		out = append(out, integrationArg{id: id, provider: provider})
	}
	return out, nil
}

// tokens returns the accepted tokens: -token, or the lines of -token-file.
func (c config) tokens() ([]string, error) {
	if c.tokenFile == "" {
		return []string{c.token}, nil
	}
	b, err := os.ReadFile(c.tokenFile)
	if err != nil {
		return nil, fmt.Errorf("read token file: %w", err)
	}
	var tokens []string
	for line := range strings.SplitSeq(string(b), "\n") {
		if t := strings.TrimSpace(line); t != "" {
			tokens = append(tokens, t)
		}
	}
	if len(tokens) == 0 {
		return nil, fmt.Errorf("token file %s holds no token", c.tokenFile)
	}
	return tokens, nil
}
