// Command zenmuxd runs one zenmuxd node: flags and config, then node.Run.
package main

import (
	"context"
	"flag"
	"fmt"
	stdlog "log"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/rs/zerolog"

	"zenmux/config"
	"zenmux/internal/zlog"
	"zenmux/node"
)

func main() {
	path := flag.String("config", "", "path to a TOML config file (default: built-in defaults)")
	flag.Parse()
	log := zerolog.New(os.Stderr).With().Timestamp().Logger()
	// Whatever still prints through the standard log package (a library's
	// warning) becomes a JSON line like the rest of the node's.
	stdlog.SetFlags(0)
	stdlog.SetOutput(zlog.Writer(log.With().Str(zlog.NameField, "stdlog").Logger()))
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// ZENMUX_CPUPROFILE=<prefix> writes a CPU profile to <prefix>.<pid>
	// until shutdown, for measuring a node under real load.
	if prefix := os.Getenv("ZENMUX_CPUPROFILE"); prefix != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", prefix, os.Getpid()))
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}
	if err := node.Run(ctx, cfg, log); err != nil {
		log.Error().Err(err).Msg("zenmuxd stopped")
		stop()
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}
