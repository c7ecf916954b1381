// Command hookroute receives signed webhooks (Zoho SalesIQ and others),
// routes them by YAML rules written in expr, and delivers them durably to
// Slack, HTTP endpoints and helpdesks. main wires the process to the CLI
// only: the commands are in internal/cli, the work in package router and
// package sinks.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/hookroute/hookroute/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
