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
	goruntime "runtime"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/hood"
	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/runtime"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes (docs/reference.md, Exit codes).
const (
	exitOK      = 0
	exitFailed  = 1
	exitInvalid = 2
)

const usage = `Usage: rotator COMMAND [flags]

rotator keeps Ocamba Hood integration credentials in step with Vault.

Commands:
  rotator run      --config FILE [--shutdown-timeout DURATION]       the daemon: schedules, admin API, metrics
  rotator once     --config FILE [--force] [--only NAME[,NAME...]]   one pass, then exit
  rotator plan     --config FILE [--only NAME[,NAME...]]             what a pass would push, values masked
  rotator validate --config FILE                                     check the file; touches no network
  rotator rotate   NAME --config FILE [--dry-run]                    run a rotation until it rests, waiting through grace
  rotator version

Common flags:
  --config FILE         configuration file (default $ROTATOR_CONFIG)
  --log-format FORMAT   json or text (default: text on a terminal, json otherwise)
  --log-level LEVEL     debug, info, warn or error (default info)

run: SIGHUP reloads the configuration (an invalid file is refused and the one in
force stays); SIGTERM or SIGINT stops it after the pushes in flight finish, within
--shutdown-timeout (default 30s).

rotate: SIGTERM or SIGINT stops it at once; its record in Vault lets the next
rotate (or the daemon) resume the run.

Exit codes: 0 success (or nothing to push; rotate: done), 1 at least one
integration failed (rotate: undone, failed, held elsewhere or stopped),
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
	// rotationRefresh, if set, is how often the daemon reads the rotation
	// records again (tests).
	rotationRefresh time.Duration
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
	case "rotate":
		return cmdRotate(ctx, rest, e)
	case "version", "--version", "-version":
		fmt.Fprintf(e.stdout, "rotator %s (%s %s/%s)\n", version, goruntime.Version(), goruntime.GOOS, goruntime.GOARCH)
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

// flags returns the flag set of command name, which does what about says,
// with the common flags registered.
func (c *common) flags(name, about string, e env) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { printHelp(fs, about) }
	fs.StringVar(&c.config, "config", e.getenv("ROTATOR_CONFIG"), "configuration `file` (default $ROTATOR_CONFIG)")
	fs.StringVar(&c.logFormat, "log-format", "", "`format` of the log: json or text (default: text on a terminal, json otherwise)")
	fs.StringVar(&c.logLevel, "log-level", "info", "`level` of the log: debug, info, warn or error")
	return fs
}

// commandArgs are the arguments a command takes besides its flags, as its
// usage line shows them.
var commandArgs = map[string]string{"rotate": "NAME "}

// printHelp prints a command's help: its usage line, what it does, and its
// flags as --flag.
func printHelp(fs *flag.FlagSet, about string) {
	w := fs.Output()
	fmt.Fprintf(w, "Usage: rotator %s %s[flags]\n\n%s\n\nFlags:\n", fs.Name(), commandArgs[fs.Name()], about)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fs.VisitAll(func(f *flag.Flag) {
		arg, text := flag.UnquoteUsage(f)
		if f.DefValue != "" && f.DefValue != "false" && !strings.Contains(text, "(default") {
			text += " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", strings.TrimSpace("--"+f.Name+" "+strings.ToUpper(arg)), text)
	})
	tw.Flush()
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

// parseNamed parses the flags of a command that takes names besides them
// (before, between or after the flags) and returns the names; code and ok
// are parseFlags'.
func parseNamed(fs *flag.FlagSet, args []string) (names []string, code int, ok bool) {
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitOK, false
			}
			return nil, exitInvalid, false
		}
		if fs.NArg() == 0 {
			return names, 0, true
		}
		names = append(names, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// newRuntime is the one place a command builds the runtime of cfg: its
// clients (Vault logged in now), state, audit log, engine and rotations.
// readOnly makes the ha.mode vault store write nothing (`plan`).
func newRuntime(ctx context.Context, cfg *config.Config, log *slog.Logger, e env, readOnly bool) (*runtime.Runtime, error) {
	rt, err := runtime.Build(ctx, cfg, runtime.Options{
		Logger: log, Getenv: e.getenv, Version: version, Limiters: hood.NewLimiters(), ReadOnly: readOnly, Login: true,
	})
	if err != nil {
		return nil, err
	}
	rt.UseAllowance() // ha.mode vault: Hood requests wait for the fleet's allowance
	return rt, nil
}

// errNoConfig is the error of a command given no configuration file.
var errNoConfig = errors.New("no configuration file: pass --config FILE or set $ROTATOR_CONFIG")

// loadConfig loads and validates the configuration of command cmd,
// printing every problem.
func loadConfig(cmd, path string, e env) (*config.Config, bool) {
	err := errNoConfig
	if path != "" {
		var cfg *config.Config
		if cfg, err = config.LoadAndValidate(path, e.getenv); err == nil {
			return cfg, true
		}
	}
	printConfigError(e.stderr, cmd, path, err)
	return nil, false
}

// failed prints why command cmd failed and returns its exit code: 2 when
// the configuration at path cannot be used, else 1.
func failed(e env, cmd, path string, err error) int {
	printConfigError(e.stderr, cmd, path, err)
	if errors.As(err, new(*runtime.ConfigError)) {
		return exitInvalid
	}
	return exitFailed
}

// printConfigError prints why the configuration at path cannot be used:
// each problem of an invalid file on a line of its own.
func printConfigError(w io.Writer, cmd, path string, err error) {
	var ve *config.ValidationError
	if !errors.As(err, &ve) {
		fmt.Fprintf(w, "rotator %s: %v\n", cmd, err)
		return
	}
	fmt.Fprintf(w, "%s: %d problem(s):\n", path, len(ve.Problems))
	for _, p := range ve.Problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
}

func cmdValidate(args []string, e env) int {
	var c common
	fs := c.flags("validate", "Check the configuration file; touches no network.", e)
	if code, ok := parseFlags(fs, args, e); !ok {
		return code
	}
	cfg, ok := loadConfig("validate", c.config, e)
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
	about := "Make one pass over the integrations, then exit."
	if name == "plan" {
		about = "Show what a pass would push, values masked; write nothing, send nothing to Hood."
	}
	fs := c.flags(name, about, e)
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
	cfg, ok := loadConfig(name, c.config, e)
	if !ok {
		return exitInvalid
	}
	rt, err := newRuntime(ctx, cfg, log, e, name == "plan")
	if err != nil {
		return failed(e, name, c.config, err)
	}
	rep, err := rt.Engine.Pass(ctx, rotate.Request{Trigger: rotate.TriggerCLI, Force: force, DryRun: name == "plan", Only: only})
	code := exitOK
	switch {
	case err != nil:
		fmt.Fprintf(e.stderr, "rotator %s: --only: %v\n", name, err)
		code = exitInvalid
	default:
		printSummary(e.stdout, rep)
		if rep.Failed() > 0 {
			code = exitFailed
		}
	}
	// The state file and the audit log: a failed close may have lost what
	// the pass wrote, so it fails the command (after its report).
	if cerr := rt.Close(); cerr != nil {
		fmt.Fprintf(e.stderr, "rotator %s: %v\n", name, cerr)
		code = max(code, exitFailed)
	}
	return code
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
