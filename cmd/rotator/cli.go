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
	"runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ocamba-rotator/rotator/internal/audit"
	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/ha"
	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/state"
	"github.com/ocamba-rotator/rotator/internal/vault"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes (docs/reference.md, Exit codes).
const (
	exitOK      = 0
	exitFailed  = 1
	exitInvalid = 2
)

const usage = `rotator keeps Ocamba Hood integration credentials in step with Vault.

Usage:
  rotator run      --config FILE [--shutdown-timeout DURATION]       the daemon: schedules, admin API, metrics
  rotator once     --config FILE [--force] [--only NAME[,NAME...]]   one pass, then exit
  rotator plan     --config FILE [--only NAME[,NAME...]]             what a pass would push, values masked
  rotator validate --config FILE                                     check the file; touches no network
  rotator version

Common flags:
  --config FILE         configuration file (default $ROTATOR_CONFIG)
  --log-format FORMAT   json or text (default: text on a terminal, json otherwise)
  --log-level LEVEL     debug, info, warn or error (default info)

run: SIGHUP reloads the configuration (an invalid file is refused and the one in
force stays); SIGTERM or SIGINT stops it after the pushes in flight finish, within
--shutdown-timeout (default 30s).

Exit codes: 0 success (or nothing to push), 1 at least one integration failed,
2 invalid configuration or command line.
`

// env is the process environment, injected so tests are hermetic.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	reload         <-chan struct{}   // SIGHUP, for `run`
	started        func(addr string) // called when `run` serves its admin API (tests)
	// adminWriteTimeout, if set, is the admin server's write timeout (tests).
	adminWriteTimeout time.Duration
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	reload := make(chan struct{}, 1)
	go func() {
		for {
			select {
			case <-hup:
				select {
				case reload <- struct{}{}:
				default: // a reload is already pending
				}
			case <-ctx.Done():
				return
			}
		}
	}()
	return runWith(ctx, args, env{stdout: stdout, stderr: stderr, getenv: os.Getenv, reload: reload})
}

func runWith(ctx context.Context, args []string, e env) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitInvalid
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(ctx, rest, e)
	case "once":
		return cmdPass(ctx, cmd, rest, e)
	case "plan":
		return cmdPass(ctx, cmd, rest, e)
	case "validate":
		return cmdValidate(rest, e)
	case "version", "--version", "-version":
		fmt.Fprintf(e.stdout, "rotator %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return exitOK
	case "help", "-h", "-help", "--help":
		fmt.Fprint(e.stdout, usage)
		return exitOK
	default:
		fmt.Fprintf(e.stderr, "rotator: unknown command %q\n\n%s", cmd, usage)
		return exitInvalid
	}
}

// common holds the flags every command that reads a configuration takes.
type common struct {
	config    string
	logFormat string
	logLevel  string
}

func (c *common) register(fs *flag.FlagSet, getenv func(string) string) {
	fs.StringVar(&c.config, "config", getenv("ROTATOR_CONFIG"), "configuration `file` (default $ROTATOR_CONFIG)")
	fs.StringVar(&c.logFormat, "log-format", "", "log format: json or text (default: text on a terminal, json otherwise)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// logger builds the process logger on stderr.
func (c *common) logger(stderr io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not one of debug, info, warn, error", c.logLevel)
	}
	format := c.logFormat
	if format == "" {
		format = "json"
		if isTerminal(stderr) {
			format = "text"
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(stderr, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format: %q is not json or text", format)
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// parseFlags parses a command's flags. It returns ok when the command
// should go on; otherwise the exit code: 0 after -h/--help (the usage was
// printed), 2 for a bad command line (the problem was printed).
func parseFlags(fs *flag.FlagSet, args []string, e env) (code int, ok bool) {
	fs.SetOutput(e.stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitInvalid, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "rotator %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return exitInvalid, false
	}
	return 0, true
}

// loadConfig loads and validates the configuration, printing every problem.
func loadConfig(path string, e env) (*config.Config, bool) {
	if path == "" {
		fmt.Fprintln(e.stderr, "rotator: no configuration file: pass --config FILE or set $ROTATOR_CONFIG")
		return nil, false
	}
	cfg, err := config.LoadAndValidate(path, e.getenv)
	if err != nil {
		var ve *config.ValidationError
		if errors.As(err, &ve) {
			fmt.Fprintf(e.stderr, "%s: %d problem(s):\n", path, len(ve.Problems))
			for _, p := range ve.Problems {
				fmt.Fprintf(e.stderr, "  %s\n", p)
			}
		} else {
			fmt.Fprintf(e.stderr, "rotator: %v\n", err)
		}
		return nil, false
	}
	return cfg, true
}

func cmdValidate(args []string, e env) int {
	var c common
	fs := flag.NewFlagSet("validate", flag.ContinueOnError)
	c.register(fs, e.getenv)
	if code, ok := parseFlags(fs, args, e); !ok {
		return code
	}
	cfg, ok := loadConfig(c.config, e)
	if !ok {
		return exitInvalid
	}
	fmt.Fprintf(e.stdout, "%s: valid, %d integration(s)\n", c.config, len(cfg.Integrations))
	return exitOK
}

// onlyFlag collects --only NAME[,NAME...], repeatable.
type onlyFlag []string

func (o *onlyFlag) String() string { return strings.Join(*o, ",") }

func (o *onlyFlag) Set(s string) error {
	for _, name := range strings.Split(s, ",") {
		if name = strings.TrimSpace(name); name != "" {
			*o = append(*o, name)
		}
	}
	return nil
}

// cmdPass runs `once` (push) or `plan` (dry run).
func cmdPass(ctx context.Context, name string, args []string, e env) int {
	var (
		c     common
		only  onlyFlag
		force bool
	)
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	c.register(fs, e.getenv)
	fs.Var(&only, "only", "run only these integrations (`NAME[,NAME...]`, repeatable)")
	if name == "once" {
		fs.BoolVar(&force, "force", false, "push even integrations whose settings have not changed")
	}
	if code, ok := parseFlags(fs, args, e); !ok {
		return code
	}
	log, err := c.logger(e.stderr)
	if err != nil {
		fmt.Fprintf(e.stderr, "rotator %s: %v\n", name, err)
		return exitInvalid
	}
	cfg, ok := loadConfig(c.config, e)
	if !ok {
		return exitInvalid
	}

	vc, err := vault.New(cfg.Vault, vault.Options{Logger: log, Getenv: e.getenv, Timeout: cfg.Vault.Timeout.D()})
	if err != nil {
		fmt.Fprintf(e.stderr, "rotator %s: %v\n", name, err)
		return exitInvalid
	}
	var reader rotate.SecretReader = vc
	if err := vc.Login(ctx); err != nil {
		log.Error("vault login failed", "error", err.Error())
		reader = failingReader{err: fmt.Errorf("log in to vault: %w", err)}
	}
	hc, err := newHoodClient(cfg, log)
	if err != nil {
		fmt.Fprintf(e.stderr, "rotator %s: %v\n", name, err)
		return exitInvalid
	}
	var st rotate.State
	if cfg.HA.Enabled() {
		// ha.mode vault: the records (and leases) other rotators share.
		opts := ha.OptionsFrom(cfg.HA, vc, log)
		opts.ReadOnly = name == "plan" // a dry run writes nothing, not even the first HMAC key
		if st, err = ha.New(opts); err != nil {
			fmt.Fprintf(e.stderr, "rotator %s: %v\n", name, err)
			return exitInvalid
		}
	} else {
		local, err := state.Open(cfg.State.Path)
		if err != nil {
			fmt.Fprintf(e.stderr, "rotator %s: %v\n", name, err)
			return exitFailed
		}
		defer local.Close()
		st = local
	}
	al, err := audit.Open(cfg.Audit.Path)
	if err != nil {
		fmt.Fprintf(e.stderr, "rotator %s: %v\n", name, err)
		return exitFailed
	}
	defer al.Close()
	eng := rotate.New(cfg, rotate.Options{Vault: reader, Hood: hc, State: st, Audit: al, Getenv: e.getenv, Logger: log})
	rep, err := eng.Pass(ctx, rotate.Request{Trigger: rotate.TriggerCLI, Force: force, DryRun: name == "plan", Only: only})
	if err != nil {
		fmt.Fprintf(e.stderr, "rotator %s: --only: %v\n", name, err)
		return exitInvalid
	}
	printSummary(e.stdout, rep)
	if rep.Failed() > 0 {
		return exitFailed
	}
	return exitOK
}

func newHoodClient(cfg *config.Config, log *slog.Logger) (*hood.Client, error) {
	h := cfg.Hood
	return hood.New(hood.Options{
		BaseURL:        h.BaseURL,
		Timeout:        h.Timeout.D(),
		Burst:          h.RateLimit.Burst,
		PerMinute:      h.RateLimit.PerMinute,
		MaxAttempts:    h.Retry.MaxAttempts,
		InitialBackoff: h.Retry.InitialBackoff.D(),
		MaxBackoff:     h.Retry.MaxBackoff.D(),
		UserAgent:      "rotator/" + version,
		Logger:         log,
	})
}

// failingReader stands in for Vault when the login failed: every read fails
// with the login's error, so each integration reports why.
type failingReader struct{ err error }

func (f failingReader) ReadKV(context.Context, string, string, int) (*vault.KV, error) {
	return nil, f.err
}

func (f failingReader) ReadKVVersion(context.Context, string, string, int) (*vault.KV, error) {
	return nil, f.err
}

// printSummary writes the human-readable table that ends `once` and `plan`.
func printSummary(w io.Writer, rep rotate.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tPROVIDER\tVAULT\tOUTCOME")
	counts := map[rotate.Result]int{}
	for _, o := range rep.Outcomes {
		counts[o.Result]++
		ver := "-"
		if o.VaultVersion > 0 {
			ver = fmt.Sprintf("v%d", o.VaultVersion)
		}
		outcome := string(o.Result)
		switch o.Result {
		case rotate.ResultFailed:
			outcome = "failed: " + oneLine(o.Error)
		case rotate.ResultWouldPush:
			outcome += " (" + wouldPush(o) + ")"
		case rotate.ResultPushed:
			outcome += " (" + strings.Join(o.Settings, ", ") + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", o.Name, o.ID, o.Provider, ver, outcome)
	}
	tw.Flush()
	var parts []string
	for _, r := range []rotate.Result{rotate.ResultPushed, rotate.ResultWouldPush, rotate.ResultUnchanged, rotate.ResultFailed} {
		if counts[r] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[r], r))
		}
	}
	if len(parts) == 0 {
		parts = []string{"nothing selected"}
	}
	fmt.Fprintf(w, "%d integration(s): %s\n", len(rep.Outcomes), strings.Join(parts, ", "))
}

// wouldPush says why a dry run would push: the settings that changed, and
// why Hood may hold other settings than the last confirmed push.
func wouldPush(o rotate.Outcome) string {
	var why []string
	if len(o.Changed) > 0 {
		why = append(why, "changes: "+strings.Join(o.Changed, ", "))
	}
	if o.Doubt != "" {
		why = append(why, "Hood may hold other settings: "+o.Doubt)
	}
	if len(why) == 0 {
		return "forced"
	}
	return strings.Join(why, "; ")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
