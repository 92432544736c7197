package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ocamba-rotator/rotator/internal/rotate"
	"github.com/ocamba-rotator/rotator/internal/rotation"
)

// graceMargin is how long after the end of grace `rotate` runs again, so
// that its run never comes before it.
const graceMargin = time.Second

// cmdRotate is `rotator rotate NAME`: a rotation run until it rests,
// waiting through its grace period; SIGINT/SIGTERM (ctx) stop it, its
// record resumable.
func cmdRotate(ctx context.Context, args []string, e env) int {
	var (
		c      common
		dryRun bool
	)
	fs := c.flags("rotate", "Run the rotation NAME until it rests (done or undone), waiting through its grace period; resume it if a run is in progress.", e)
	fs.BoolVar(&dryRun, "dry-run", false, "print the steps a run would take now; write nothing, ask no provider or Hood")
	names, code, ok := parseNamed(fs, args)
	if !ok {
		return code
	}
	switch {
	case len(names) == 0:
		fmt.Fprintln(e.stderr, "rotator rotate: no rotation named: rotator rotate NAME --config FILE")
		return exitInvalid
	case len(names) > 1:
		fmt.Fprintf(e.stderr, "rotator rotate: unexpected argument %q\n", names[1])
		return exitInvalid
	}
	name := names[0]
	log, err := c.logger(e.stderr)
	if err != nil {
		fmt.Fprintf(e.stderr, "rotator rotate: %v\n", err)
		return exitInvalid
	}
	cfg, ok := loadConfig("rotate", c.config, e)
	if !ok {
		return exitInvalid
	}
	if _, ok := cfg.Rotation(name); !ok {
		var known []string
		for _, r := range cfg.Rotations {
			known = append(known, r.Name)
		}
		fmt.Fprintf(e.stderr, "rotator rotate: unknown rotation %q (configured: %s)\n", name, orNone(known))
		return exitInvalid
	}
	rt, err := newRuntime(ctx, cfg, log, e, dryRun) // a dry run writes nothing, not even the HA store's key
	if err != nil {
		return failed(e, "rotate", c.config, err)
	}
	code = rotateUntilRest(ctx, rt.Rotations, name, dryRun, e.stdout)
	// The state file and the audit log: a failed close may have lost what
	// the run wrote, so it fails the command.
	if cerr := rt.Close(); cerr != nil {
		fmt.Fprintf(e.stderr, "rotator rotate: %v\n", cerr)
		code = max(code, exitFailed)
	}
	return code
}

// rotateUntilRest runs the rotation until it rests, waiting through grace,
// and prints where each run left it; it returns the exit code.
func rotateUntilRest(ctx context.Context, r *rotation.Runner, name string, dryRun bool, w io.Writer) int {
	trigger := string(rotate.TriggerCLI)
	if dryRun {
		res, err := r.Run(ctx, name, rotation.Request{Trigger: trigger, DryRun: true})
		if err != nil {
			printRotation(w, res, err)
			return exitFailed
		}
		fmt.Fprintf(w, "rotation %s (%s): at %s; a run would:\n", res.Name, res.Provider, stepName(res.Step))
		for i, p := range res.Plan {
			fmt.Fprintf(w, "  %d. %s\n", i+1, p)
		}
		return exitOK
	}
	req := rotation.Request{Trigger: trigger, Begin: true}
	if st, err := r.StatusOf(ctx, name); err == nil && st.InProgress() {
		req.Begin = false
		fmt.Fprintf(w, "rotation %s: a run is in progress (step %s): resuming it; no new rotation is begun\n", name, st.Step)
	}
	for {
		res, err := r.Run(ctx, name, req)
		req.Begin = false
		switch {
		case errors.Is(err, rotation.ErrBusy):
			fmt.Fprintf(w, "rotation %s: held by another rotator, which finishes it: %s\n", name, oneLine(err.Error()))
			return exitFailed
		case err != nil && ctx.Err() != nil:
			printRotation(w, res, err)
			fmt.Fprintf(w, "rotation %s: stopped; its record lets `rotator rotate %s` or the daemon resume the run\n", name, name)
			return exitFailed
		case err != nil:
			printRotation(w, res, err)
			return exitFailed
		case res.GraceUntil != nil:
			until := res.GraceUntil.UTC()
			fmt.Fprintf(w, "rotation %s: every consumer is confirmed on the new credential; waiting for the grace period to end at %s (in %s) before revoking the old one\n",
				name, until.Format(time.RFC3339), time.Until(until).Round(time.Second))
			t := time.NewTimer(time.Until(until) + graceMargin)
			select {
			case <-ctx.Done():
				t.Stop()
				fmt.Fprintf(w, "rotation %s: stopped while waiting; the old credential is revoked by `rotator rotate %s` or the daemon after %s\n",
					name, name, until.Format(time.RFC3339))
				return exitFailed
			case <-t.C:
			}
		default:
			printRotation(w, res, nil)
			if res.Step == rotation.StepDone {
				return exitOK
			}
			return exitFailed
		}
	}
}

// printRotation writes the summary of a run: where it left the rotation,
// the current key id, the notes and the error (never a credential).
func printRotation(w io.Writer, res rotation.Result, err error) {
	prov := ""
	if res.Provider != "" {
		prov = " (" + res.Provider + ")"
	}
	step := stepName(res.Step)
	if res.Step == rotation.StepNone && err != nil {
		step = "not run"
	}
	fmt.Fprintf(w, "rotation %s%s: %s\n", res.Name, prov, step)
	if res.KeyID != "" {
		fmt.Fprintf(w, "  key id:  %s\n", res.KeyID)
	}
	if res.Version > 0 {
		fmt.Fprintf(w, "  version: %d\n", res.Version)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "  note:    %s\n", oneLine(n))
	}
	msg := res.Error
	if msg == "" && err != nil {
		msg = err.Error()
	}
	if msg != "" {
		fmt.Fprintf(w, "  error:   %s\n", oneLine(msg))
	}
}

// stepName is a step as the summary says it.
func stepName(s rotation.Step) string {
	if s == rotation.StepNone || s == "none" {
		return "never run"
	}
	return string(s)
}

func orNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
