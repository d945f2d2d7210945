package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills at once, should shutting down hang
	}()
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "migrate" {
		os.Exit(runMigrate(ctx, args[1:], os.Getenv, os.Stdout, os.Stderr))
	}
	os.Exit(run(ctx, args, os.Getenv, os.Stdout, os.Stderr))
}
