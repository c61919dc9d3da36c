// Command zenmuxd runs one zenmuxd node: flags and config, then node.Run.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/rs/zerolog"

	"zenmux/config"
	"zenmux/node"
)

func main() {
	path := flag.String("config", "", "path to a TOML config file (default: built-in defaults)")
	flag.Parse()
	log := zerolog.New(os.Stderr).With().Timestamp().Logger()
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := node.Run(ctx, cfg, log); err != nil {
		log.Error().Err(err).Msg("zenmuxd stopped")
		os.Exit(1)
	}
}
