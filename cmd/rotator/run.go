package main

import (
	"context"
	"errors"
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
	fs := c.flags("run", "Run the daemon: passes on schedule, the admin API and metrics; SIGHUP reloads, SIGTERM stops.", e)
	fs.DurationVar(&shutdown, "shutdown-timeout", config.DefaultShutdownTimeout, "how long pushes in flight may take to finish at shutdown")
	if code, ok := parseFlags(fs, args, e); !ok {
		return code
	}
	log, err := c.logger(e.stderr)
	if err != nil {
		fmt.Fprintf(e.stderr, "rotator run: %v\n", err)
		return exitInvalid
	}
	if c.config == "" {
		printConfigError(e.stderr, "run", c.config, errNoConfig)
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
		RotationRefresh:   e.rotationRefresh,
	})
	if err == nil {
		return exitOK
	}
	if !errors.As(err, new(*daemon.ConfigError)) {
		log.Error("rotator run failed", "error", err.Error())
	}
	return failed(e, "run", c.config, err)
}
