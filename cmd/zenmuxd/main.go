// Command zenmuxd runs one zenmuxd node: flags and config, then node.Run.
//
//	zenmuxd [-config FILE]         run a node
//	zenmuxd check [-config FILE]   validate the config and the files it names, then exit
//	zenmuxd version                print the build's version, revision and Go version
//	zenmuxd backup -admin URL -token-file F [-ca-file CA -cert-file C -key-file K] -out FILE
//	                               write a running cluster's state to FILE, verified
//	zenmuxd restore -config FILE -from BACKUP
//	                               prepare a new cluster's first node from a backup
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"syscall"

	"github.com/rs/zerolog"

	"zenmux/config"
	"zenmux/internal/zlog"
	"zenmux/node"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "check":
			os.Exit(check(os.Args[2:], os.Stdout, os.Stderr))
		case "version":
			version(os.Stdout)
			return
		case "backup":
			os.Exit(node.BackupCommand(os.Args[2:], os.Stdout, os.Stderr))
		case "restore":
			os.Exit(node.RestoreCommand(os.Args[2:], os.Stdout, os.Stderr))
		}
	}
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

// check parses and validates the config as a start does and reads the
// files a start reads before it opens anything (node.Check), without
// opening the data dir or a listener. It prints "ok", or each problem on
// its own line, and returns the exit code: 0, 1 for a config that cannot
// start, 2 for bad arguments. Warnings (a provider without its key, which
// a start logs and serves without) go to stderr and keep the code 0.
func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("zenmuxd check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "path to a TOML config file (default: built-in defaults)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "zenmuxd check: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stdout, err)
		return 1
	}
	problems, warnings := node.Check(cfg, os.Getenv)
	for _, w := range warnings {
		fmt.Fprintln(stderr, "warning:", w)
	}
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(stdout, p)
		}
		return 1
	}
	fmt.Fprintln(stdout, "ok")
	return 0
}

// version prints the module's version and the VCS revision and time the
// binary was built from (as the go command stamps them; "unknown" when
// built with -buildvcs=false or outside a checkout), and the Go version:
// "zenmuxd (devel), revision 1a2b…, committed 2026-12-07T16:00:00Z, go1.26.0".
func version(w io.Writer) {
	mod, rev, at, dirty := "(unknown)", "unknown", "unknown", ""
	goVersion := runtime.Version()
	if info, ok := debug.ReadBuildInfo(); ok {
		mod, goVersion = info.Main.Version, info.GoVersion
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = " (with uncommitted changes)"
				}
			}
		}
	}
	fmt.Fprintf(w, "zenmuxd %s, revision %s%s, committed %s, %s\n", mod, rev, dirty, at, goVersion)
}
