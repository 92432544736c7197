// Command rotator keeps the credentials inside Ocamba Hood messaging
// integrations fresh: it reads them from Vault and pushes settings-only
// updates to Hood. See README.md and docs/reference.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
