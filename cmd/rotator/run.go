package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/ocamba-rotator/rotator/internal/config"
	"github.com/ocamba-rotator/rotator/internal/daemon"
)

// cmdRun is `rotator run`: the daemon, until SIGTERM/SIGINT (ctx).
func cmdRun(ctx context.Context, args []string, e env) int {
	var (
		c        common
		shutdown time.Duration
	)
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	c.register(fs, e.getenv)
	fs.DurationVar(&shutdown, "shutdown-timeout", 30*time.Second, "how long pushes in flight may take to finish at shutdown")
	if code, ok := parseFlags(fs, args, e); !ok {
		return code
	}
	log, err := c.logger(e.stderr)
	if err != nil {
		fmt.Fprintf(e.stderr, "rotator run: %v\n", err)
		return exitInvalid
	}
	if c.config == "" {
		fmt.Fprintln(e.stderr, "rotator: no configuration file: pass --config FILE or set $ROTATOR_CONFIG")
		return exitInvalid
	}
	err = daemon.Run(ctx, daemon.Options{
		ConfigPath:      c.config,
		Getenv:          e.getenv,
		Logger:          log,
		Version:         version,
		Reload:          e.reload,
		ShutdownTimeout: shutdown,
		Started:         e.started,

		AdminWriteTimeout: e.adminWriteTimeout,
	})
	var ce *daemon.ConfigError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ce):
		var ve *config.ValidationError
		if errors.As(err, &ve) {
			fmt.Fprintf(e.stderr, "%s: %d problem(s):\n", c.config, len(ve.Problems))
			for _, p := range ve.Problems {
				fmt.Fprintf(e.stderr, "  %s\n", p)
			}
		} else {
			fmt.Fprintf(e.stderr, "rotator run: %v\n", err)
		}
		return exitInvalid
	default:
		log.Error("rotator run failed", "error", err.Error())
		fmt.Fprintf(e.stderr, "rotator run: %v\n", err)
		return exitFailed
	}
}
