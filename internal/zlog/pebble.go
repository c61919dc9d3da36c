package zlog

import (
	"os"

	"github.com/cockroachdb/pebble"
	"github.com/rs/zerolog"
)

// pebbleLogger is a pebble.Logger writing through a zerolog.Logger.
type pebbleLogger struct{ log zerolog.Logger }

// Pebble returns a pebble.Logger writing through log, named "pebble".
// Pebble's Infof carries routine news (the WAL replayed at open) and, by
// default, background errors; it is written at debug level — give the
// database PebbleEvents to have those errors at error level.
func Pebble(log zerolog.Logger) pebble.Logger {
	return pebbleLogger{log: log.With().Str(NameField, "pebble").Logger()}
}

// Infof writes one debug entry.
func (p pebbleLogger) Infof(format string, args ...any) {
	msgf(p.log.Debug(), format, args)
}

// Fatalf writes one fatal entry and exits with status 1: Pebble calls it
// on a broken invariant and does not expect it to return. The exit does
// not depend on the logger's level, as zerolog's Fatal would.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msgf(p.log.WithLevel(zerolog.FatalLevel), format, args)
	os.Exit(1)
}

// PebbleEvents returns a Pebble event listener that writes through log,
// named "pebble", the events an operator acts on: a background error
// (a failed flush or compaction) at error level, a slow disk operation
// and the start of a write stall at warn level, the stall's end at info.
// Pebble's other events (every flush and compaction) are left out.
func PebbleEvents(log zerolog.Logger) *pebble.EventListener {
	log = log.With().Str(NameField, "pebble").Logger()
	return &pebble.EventListener{
		BackgroundError: func(err error) {
			log.Error().Err(err).Msg("background error")
		},
		DiskSlow: func(info pebble.DiskSlowInfo) {
			log.Warn().Str("path", info.Path).Str("op", info.OpType.String()).Dur("elapsed", info.Duration).Msg("disk slowness detected")
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			log.Warn().Str("reason", info.Reason).Msg("write stall beginning")
		},
		WriteStallEnd: func() {
			log.Info().Msg("write stall ending")
		},
	}
}
